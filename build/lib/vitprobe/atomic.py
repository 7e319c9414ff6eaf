"""Atomic file writes: write to a temporary file in the same directory, then rename.
A reader (or Snakemake) never sees a half-written file under the final name.

Files and directories get the modes of a plain `open`/`mkdir`: 0o666 & ~umask and
0o777 & ~umask, so a group sharing the results can read them."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask, read from /proc/self/status on Linux (no change to the process
    state), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a newly created file: 0o666 & ~umask (0o644 under umask 022)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Mode of a newly created directory: 0o777 & ~umask (0o755 under umask 022)."""
    return 0o777 & ~umask()


def _remove_stale_temporaries(path: Path) -> None:
    """Delete `.<name>.XXXXXXXX.tmp` next to `path`: files a killed writer of `path` left.
    Assumes one writer per path at a time, as in the pipeline (one job per output)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")  # mkstemp's 8 random chars
    for entry in os.scandir(path.parent):
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success give it mode 0o666 & ~umask and
    rename it to `path`, else delete it. Temporaries left by killed writers of `path` go first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with contextlib.suppress(PermissionError):  # e.g. a hard link to a file of another owner
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
