"""End to end: the build-up search as Snakemake runs it (workflow/rules/search.smk), real
training of tiny candidates on synthetic data, in a temporary copy of the workflow: the DAG
grows one decision at a time, the decisions follow the rule on the recorded held-out
accuracies, and a run killed mid-search resumes without retraining finished candidates."""

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO

from vitprobe.search import walk as search

pytestmark = pytest.mark.slow

R = "results/s"
BASE = "synthetic-preact_t_msa0_0_0_0-k0-f1-s0"


def _config():
    c = copy.deepcopy(yaml.safe_load((REPO / "profiles/search/search.yaml").read_text()))
    c.update(results_dir=R, figures_dir="figures/s")
    c["data"] = {"dataset": "synthetic", "root": "data", "download": False,
                 "synthetic": {"num_classes": 4, "train_per_class": 20, "test_per_class": 5, "seed": 0}}
    c["models"] = {"preact_t": {"arch": "preact_resnet50_cifar",
                                "kwargs": {"layers": [1, 2, 2, 2], "widths": [4, 4, 8, 8], "heads": [1, 1, 1, 1],
                                           "head_dim": 8}}}
    c["experiments"] = {"base": {"models": ["preact_t"]}}
    c["search"].update(base="preact_t", holdout=0.25)
    c["train"].update(epochs=1, warmup_epochs=1, checkpoint_epochs=[1], batch_size=16, lr_batch_size=16,
                      eval_every=1)
    c["figures"] = {"fig_buildup": {"experiments": ["base"]}}
    return c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    shutil.copy(REPO / "Snakefile", d / "Snakefile")
    shutil.copytree(REPO / "workflow", d / "workflow")
    (d / "s.yaml").write_text(yaml.safe_dump(_config()))
    return d


def _cmd(*args, configfile="s.yaml"):
    return [sys.executable, "-m", "snakemake", "--configfile", configfile, "--cores", "2", *args]


def _snakemake(workdir, *args, **kw):
    return subprocess.run(_cmd(*args, **kw), cwd=workdir, capture_output=True, text=True)


def _planned(workdir) -> tuple[set, dict]:
    """Candidate runs a dry run would train, and its job counts."""
    out = _snakemake(workdir, "-n")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", text.split("Job stats:")[1], re.M)} \
        if "Job stats:" in text else {}
    trains = set(re.findall(r"rule train:\n(?:    .*\n)*?    wildcards: run=(\S+_msa[\d_]+-\S+)", text))
    return trains, counts


def _state(workdir, step):
    return json.loads((workdir / R / f"search/step_{step}.json").read_text())


def test_search_grows_follows_the_rule_and_resumes_after_a_kill(workdir):
    # before anything: the DAG holds the base candidate and the first decision only
    trains, counts = _planned(workdir)
    assert trains == {BASE} and counts["search_step"] == 1 and counts["search_table"] == 1

    first = _snakemake(workdir, f"{R}/search/step_0.json")
    assert first.returncode == 0, first.stderr[-3000:]
    state0 = _state(workdir, 0)
    assert [s["run"] for s in state0["steps"]] == [BASE]
    second = "synthetic-preact_t_msa0_0_0_1-k0-f1-s0"  # the rule: one MSA block at the end of c4
    assert state0["next"] == {"layout": [0, 0, 0, 1], "stage": 4, "run": second}
    trains, counts = _planned(workdir)  # the DAG grew by the one candidate the decision named
    assert trains == {second} and counts["search_step"] == 1

    # the whole search, killed once the third candidate (named by step 1) is training
    proc = subprocess.Popen(_cmd(), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    third_log, deadline = None, time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if third_log is None and (workdir / R / "search/step_1.json").exists():
                third_log = workdir / R / f"logs/train/{_state(workdir, 1)['next']['run']}.log"
            if third_log is not None and third_log.exists():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the search finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (workdir / R / "search/step_2.json").exists()
    done = [s["run"] for s in _state(workdir, 1)["steps"]]
    assert done == [BASE, second]
    stamps = {p: p.stat().st_mtime_ns for r in done
              for p in (workdir / R / "runs" / r / name for name in ("ckpt/e1.pt", "train_log.parquet",
                                                                   "holdout_e1.json"))}

    assert _snakemake(workdir, "--unlock").returncode == 0
    rerun = _snakemake(workdir, "--rerun-incomplete")
    text = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, text[-4000:]
    retrained = set(re.findall(r"rule train:\n(?:    .*\n)*?    wildcards: run=(\S+_msa[\d_]+-\S+)", text))
    assert retrained == {_state(workdir, 1)["next"]["run"]}  # only the candidate that was killed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # the path taken follows the rule on the recorded held-out accuracies
    table = pd.read_parquet(workdir / R / "search.parquet")
    scores = [json.loads((workdir / R / "runs" / r / "holdout_e1.json").read_text()) for r in table["run"]]
    walk = search.walk([1, 2, 2, 2], [0, 0, 0, 0], [4, 3], 4, [s["accuracy"] for s in scores])
    assert walk.next_layout is None and len(table) == 3  # c4 and c3 hold one MSA block each
    assert table["msa_blocks"].tolist() == [",".join(map(str, s.layout)) for s in walk.steps]
    assert table["kept"].tolist() == [s.kept for s in walk.steps]
    assert table["accuracy"].tolist() == [s["accuracy"] for s in scores]
    assert (table["n_holdout"] == 4 * 5).all() and table["stage"].tolist() == [0, 4, 3]
    assert (workdir / "figures/s/fig_buildup.pdf").read_bytes()[:5] == b"%PDF-"
    # candidates are ordinary runs: their tables are aggregated apart from the grid's
    logs = pd.read_parquet(workdir / R / "search/train_log.parquet")
    assert set(logs["model"]) == {search.candidate_model("preact_t", s.layout) for s in walk.steps}
    assert set(pd.read_parquet(workdir / R / "train_log.parquet")["model"]) == {"preact_t"}
    again = _snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_search_that_cannot_start_fails_before_any_job(workdir):
    bad = _config()
    bad["search"]["budget"] = 0
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = _snakemake(workdir, "-n", configfile="bad.yaml")
    assert out.returncode != 0 and "search.budget" in out.stdout + out.stderr
    bad["search"].update(budget=3, base="resnet_t")
    bad["models"]["resnet_t"] = {"arch": "resnet18_cifar", "kwargs": {"layers": [1, 1, 1, 1]}}
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = _snakemake(workdir, "-n", configfile="bad.yaml")
    assert out.returncode != 0
    assert "vitprobe: bad.yaml: search.base: 'resnet_t' (resnet18_cifar) is not a pre-activation ResNet" in out.stderr
