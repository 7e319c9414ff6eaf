"""Written files and folders follow the umask (a group can share results); atomic writes
clear the temporaries a killed writer left."""

import os
import stat

import pytest
import torch

from vitprobe import atomic
from vitprobe.config.load import defaults
from vitprobe.data import cifar
from vitprobe.data import splits as data
from vitprobe.models import checkpoint


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


# umask -> (file mode, directory mode), as `open` and `mkdir` give them
MODES = {0o022: (0o644, 0o755), 0o002: (0o664, 0o775)}


def test_umask_is_read_without_changing_it(umask):
    assert atomic.umask() == umask
    assert atomic.umask() == umask  # reading did not reset it


def test_atomic_write_follows_the_umask(tmp_path, umask):
    file_mode, dir_mode = MODES[umask]
    target = tmp_path / "new" / "sub" / "table.parquet"
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("x")
    assert target.read_text() == "x"
    assert _mode(target) == file_mode
    assert _mode(tmp_path / "new") == dir_mode and _mode(tmp_path / "new" / "sub") == dir_mode


def test_checkpoint_follows_the_umask(tmp_path, umask):
    path = tmp_path / "ckpt" / "e0.pt"
    checkpoint.save(path, torch.nn.Linear(2, 1), run={}, epoch=0, config_hash="h",
                    recipe={"arch": "x", "kwargs": {}, "num_classes": 1})
    assert _mode(path) == MODES[umask][0] and _mode(path.parent) == MODES[umask][1]


def test_synthetic_data_folder_follows_the_umask(tmp_path, umask):
    file_mode, dir_mode = MODES[umask]
    data.prepare("synthetic", tmp_path / "data", synthetic={**defaults("data", "synthetic"), "num_classes": 2,
                                                            "train_per_class": 2, "test_per_class": 1})
    folder = tmp_path / "data" / cifar.SYNTHETIC_FOLDER
    assert _mode(folder) == dir_mode  # was made by mkdtemp (0700) and renamed
    files = list(folder.iterdir())
    assert files and all(_mode(f) == file_mode for f in files)


def test_atomic_write_removes_a_killed_writers_temporaries(tmp_path):
    target = tmp_path / "e1.pt"
    stale = tmp_path / ".e1.pt.k3_x9abc.tmp"  # as mkstemp names them: 8 characters of [a-z0-9_]
    keep = [tmp_path / ".e1.pt.b.k3_x9abc.tmp",  # a temporary of e1.pt.b, not of e1.pt
            tmp_path / ".e10.pt.k3_x9abc.tmp", tmp_path / "e1.pt.k3_x9abc.tmp", tmp_path / "notes.txt"]
    for f in [stale, *keep]:
        f.write_text("half written")
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert not stale.exists()
    assert all(f.read_text() == "half written" for f in keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [target, *keep])


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
