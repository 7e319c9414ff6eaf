"""Every probe job says what it is doing on stderr (a Snakemake job's log file): a start line
with run id, checkpoint epoch and what it computes, a progress bar that reaches n/n, and a
result line with the headline numbers and the paths written.

Each probe runs through the CLI in-process on a tiny checkpoint trained by `vitprobe train`
(one epoch of a 2-block ViT of width 16 on synthetic data); one also runs as a subprocess
with stderr redirected to a file, as Snakemake's `2> {log}` does."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import TINY_PROBES

from vitprobe import catalog
from vitprobe.catalog import tables_of
from vitprobe.cli import main
from vitprobe.config.identity import Run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

EPOCH = 1
# every probe but those that read CIFAR-C (a folder of it: the rehearsal test runs those)
PROBES = {name: s for name, s in TINY_PROBES.items() if "corruptions" not in catalog.PROBES[name].reads}
# the bars each probe draws: (what, number of items); a probe not listed must still draw one that ends at n/n
BARS = {
    "hessian": [("mini-batches", 2)],
    "eval": [("test batches", 1), ("training batches", 4)],  # 60 test, 240 training images, batches of 64
    "fourier": [("chunks of 64 images", 1)],
    "variance": [("chunks of 64 images", 1)],
    "robustness": [("passes (clean, then each frequency)", 3)],
    "landscape": [("1d grid points", 3), ("2d grid points", 9)],
}
# words of each result line (the headline numbers' names)
HEADLINES = {
    "hessian": ["NEP ", "APE ", "λ_max ", "trace ", "NLL alone "],
    "eval": ["error ", "NLL test ", "NLL train ", "ECE "],
    "fourier": [" maps, mean high-frequency Δ log amplitude "],
    "variance": [" maps, variance from "],
    "robustness": ["clean accuracy ", "worst delta "],
    "landscape": ["min loss ", "loss at origin "],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(plan, run, checkpoint path) of a tiny run trained for one epoch by the CLI."""
    from conftest import tiny_vit_config, train_tiny_run
    tmp = tmp_path_factory.mktemp("probe_logs")
    probes = {name: {**settings, "epochs": [EPOCH]} for name, settings in PROBES.items()}
    return train_tiny_run(tiny_vit_config(tmp, probes, epochs=EPOCH), tmp)


def _lines(stderr: str) -> list[str]:
    """What a terminal shows of each line: tqdm redraws with carriage returns."""
    return [seg.strip() for seg in re.split(r"[\r\n]", stderr) if seg.strip()]


def _run_probe(plan, run, ckpt, probe, out_dir):
    spec = plan.probe_spec(run, probe)
    outs = [str(out_dir / f"{table}_e{EPOCH}.parquet") for table in tables_of(probe)]
    assert main([probe, "--spec", json.dumps(spec), "--device", "cpu", "--checkpoint", str(ckpt),
                 *[a for t, o in zip(tables_of(probe), outs) for a in ("--out", f"{t}={o}")]]) == 0
    return outs


def _check_log(stderr: str, probe: str, run_id: str, outs: list[str]) -> tuple[str, str]:
    """The start and result lines, after checking the log's shape; returns them."""
    prefix = f"[{run_id} e{EPOCH}] {probe}: "
    lines = _lines(stderr)
    assert lines, f"{probe}: nothing on stderr"
    start, result = lines[0], lines[-1]
    assert start.startswith(prefix) and "wrote" not in start, start
    for what, n in BARS.get(probe, ()):
        bar = [ln for ln in lines if ln.startswith(f"{prefix}{what}:")]
        assert any(f" 0/{n} " in ln for ln in bar), (what, bar)                      # the initial line
        assert any("100%" in ln and f" {n}/{n} " in ln for ln in bar), (what, bar)  # and the final one
    if probe not in BARS:
        assert any(re.search(r"100%.* (\d+)/\1 ", ln) for ln in lines if ln.startswith(prefix)), lines
    assert result.startswith(prefix) and "; wrote " in result, result
    assert result.endswith("wrote " + ", ".join(outs)), result
    for word in HEADLINES.get(probe, ()):
        assert word in result, (word, result)
    return start, result


@pytest.mark.parametrize("probe", list(PROBES))
def test_probe_logs_start_progress_and_result(trained, probe, tmp_path, capsys):
    plan, run, ckpt = trained
    capsys.readouterr()
    outs = _run_probe(plan, run, ckpt, probe, tmp_path)
    err = capsys.readouterr().err
    run_id = Run(**plan.probe_spec(run, probe)["run"]).id
    assert run_id == run.id == "synthetic-vit_demo-k0-f1-s0"
    start, result = _check_log(err, probe, run_id, outs)
    tables = {t: pd.read_parquet(p) for t, p in zip(tables_of(probe), outs)}
    df = tables[probe]
    p = PROBES[probe]
    number = r"([-+]?[\d.]+(?:e[-+]?\d+)?|nan)"

    def value(name):
        m = re.search(re.escape(name) + number, result)
        assert m, (name, result)
        return float(m.group(1))

    if probe == "hessian":
        assert ("top-3 eigenvalues (lanczos) and trace (hutchinson, 3 products per batch) on 2 mini-batches "
                "of 8 augmented") in start
        summary = tables["hessian_summary"].iloc[0]
        assert f"over {summary['n_params']:,} parameters, wd 0.05" in start
        assert value("NEP ") == pytest.approx(summary["nep"], abs=1e-3)
        assert value("λ_max ") == pytest.approx(summary["lambda_max"], rel=1e-3)
        assert value("trace ") == pytest.approx(summary["trace"], rel=1e-3)
        assert value("NLL alone ") == pytest.approx(summary["trace_nll"], rel=1e-3, abs=1e-3)
        assert summary["trace"] - summary["trace_nll"] == pytest.approx(0.05 * summary["n_params"])
        assert sum("batch 0: " in ln for ln in _lines(err)) == 2  # eigenvalues and trace of batch 0
    elif probe == "eval":
        assert "on 60 test images, NLL on 240 augmented training images, batches of 64" in start
        assert value("error ") == pytest.approx(df["error"].iloc[0], abs=0.01)
        assert value("NLL test ") == pytest.approx(df["nll_test"].iloc[0], abs=1e-4)
        per = tables["eval_images"]
        assert len(per) == 60 and df["error"].iloc[0] == 100.0 * (1.0 - per["correct"].mean())
        assert df["nll_train_std_error"].iloc[0] > 0
    elif probe in ("fourier", "variance"):
        assert f"on {p['n_images']} test images, chunks of 64" in start
        n_maps = df["map_index"].nunique()
        assert re.search(rf": {n_maps} maps, ", result) and n_maps > 1
        if probe == "fourier":
            mean = df.drop_duplicates("map_index")["high_freq_delta"].mean()
            assert value("high-frequency Δ log amplitude ") == pytest.approx(mean, abs=1e-3)
    elif probe == "robustness":
        assert f"accuracy on {p['n_images']} test images" in start and "at 2 frequencies 0.3..0.7" in start
        assert value("clean accuracy ") == pytest.approx(df["clean_accuracy"].iloc[0], abs=0.01)
        assert value("worst delta ") == pytest.approx(df["delta_accuracy"].min(), abs=0.01)
        per = tables["robustness_images"]
        assert len(per) == 2 * p["n_images"] and sorted(set(per["image"])) == list(range(p["n_images"]))
    elif probe == "landscape":
        assert "at 3 points on a line and 3×3 points on a plane" in start
        assert value("min loss ") == pytest.approx(df["loss"].min(), rel=1e-3)
        origin = df[(df["x"] == 0) & (df["y"] == 0)]["loss"]
        assert value("loss at origin ") == pytest.approx(origin.iloc[0], rel=1e-3)


def test_probe_log_file_as_snakemake_writes_it(trained, tmp_path):
    """stderr to a file (not a terminal): the start line, the bar's first and last state and
    the result line are all in it."""
    plan, run, ckpt = trained
    outs = [tmp_path / f"{table}_e{EPOCH}.parquet" for table in tables_of("variance")]
    log = tmp_path / "variance.log"
    cmd = [sys.executable, "-m", "vitprobe", "variance", "--spec", json.dumps(plan.probe_spec(run, "variance")),
           "--device", "cpu", "--checkpoint", str(ckpt),
           *[a for t, o in zip(tables_of("variance"), outs) for a in ("--out", f"{t}={o}")]]
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=f, timeout=300)
    text = log.read_text(encoding="utf-8")
    assert proc.returncode == 0, text
    _check_log(text, "variance", run.id, [str(o) for o in outs])


def test_probe_loops_take_a_progress_wrapper_that_changes_nothing():
    """`progress` of the probes' functions sees each unit of work once; results are those
    without it."""
    import numpy as np
    import torch
    from torch import nn

    from vitprobe.device import resolve
    from vitprobe.probes.evaluate.measure import augmented_nll, clean_metrics
    from vitprobe.probes.landscape.measure import filter_normalized_direction, grid_2d, loss_landscape
    from vitprobe.probes.robustness.measure import noise_robustness

    def recorder(seen):
        def progress(iterable):
            for item in iterable:
                seen.append(item)
                yield item
        return progress

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 4, (10,), generator=g)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    cpu = resolve("cpu")

    seen = []
    df = noise_robustness(model, images, labels, mean, std, eps=0.2, freqs=(0.3, 0.7), batch_size=4,
                          progress=recorder(seen))
    assert seen == [None, 0.3, 0.7]
    pd.testing.assert_frame_equal(df, noise_robustness(model, images, labels, mean, std, eps=0.2,
                                                       freqs=(0.3, 0.7), batch_size=4))

    seen = []
    assert clean_metrics(model, images, labels, mean, std, cpu, 4, progress=recorder(seen)) == \
        clean_metrics(model, images, labels, mean, std, cpu, 4)
    assert seen == [0, 4, 8]

    class NoAugment:
        def __call__(self, x, y, generator=None):
            return (x.float() / 255 - 0.5) / 0.25, nn.functional.one_hot(y, 4).float()

    seen = []
    assert augmented_nll(model, images, labels, NoAugment(), cpu, 3, progress=recorder(seen)) == \
        pytest.approx(augmented_nll(model, images, labels, NoAugment(), cpu, 3), rel=1e-12)
    assert seen == [0, 3, 6, 9]

    seen = []
    x = (images.float() / 255 - 0.5) / 0.25
    d1 = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    d2 = filter_normalized_direction(model, torch.Generator().manual_seed(2))
    coords = grid_2d(1.0, 3)
    df = loss_landscape(model, [(x, labels)], [d1, d2], coords, 0.1, progress=recorder(seen))
    np.testing.assert_array_equal(np.array(seen), np.array(coords))
    pd.testing.assert_frame_equal(df, loss_landscape(model, [(x, labels)], [d1, d2], coords, 0.1))
