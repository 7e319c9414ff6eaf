"""End to end: the Snakemake pipeline on a tiny offline config, in a temporary directory."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from vitprobe import claims, stats

pytestmark = pytest.mark.slow


def _tiny_config(demo_config):
    c = demo_config
    c["data"].update(dataset="synthetic", synthetic={"num_classes": 10, "train_per_class": 24, "test_per_class": 6,
                                                    "seed": 0})
    for alias in ("vit_demo", "lmsa_demo"):
        c["models"][alias]["kwargs"].update(embed_dim=16, depth=2, num_heads=2)
    c["models"]["resnet_demo"]["kwargs"]["widths"] = [8, 8, 16, 16]
    for alias in ("preact_demo", "alternet_demo"):
        c["models"][alias]["kwargs"]["widths"] = [4, 4, 8, 8]
    c["experiments"]["kernel_size"]["kernel_sizes"] = [3]
    ks = c["figures"]["fig_kernel_size"]
    ks["series"] = [s for s in ks["series"] if s.get("kernel_size") == 3]  # a series must match a run
    c["train"].update(epochs=2, warmup_epochs=1, checkpoint_epochs=[0, 1, 2], batch_size=32, lr_batch_size=32)
    c["probes"]["hessian"].update(epochs=[1, 2], n_batches=2, k=3, trace_samples=4)
    c["probes"]["eval"]["epochs"] = [2]
    c["probes"]["hessian_blocks"].update(epochs=[2], n_batches=2, k=2, density_steps=4, trace_products=3)
    for name, fig in c["figures"].items():
        fig["epoch"] = 1 if name == "fig_hessian" else 2
    return c


def _snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)


def _job_counts(dry_run_output: str) -> dict:
    table = dry_run_output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow (not the package) with a tiny config."""
    d = tmp_path_factory.mktemp("pipeline")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, d / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(REPO / name, d / name, symlinks=False)
    return d


@pytest.fixture(scope="module")
def tiny(workdir):
    import copy
    cfg = _tiny_config(copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text())))
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


def test_figure_target_plans_only_the_runs_it_needs(workdir, tiny):
    dry = _snakemake(workdir, "-n", "figures/demo/fig_hessian.pdf")
    assert dry.returncode == 0, dry.stderr
    counts = _job_counts(dry.stdout + dry.stderr)
    # ResNet, ViT, ViT on 1/16: not the local-attention run; Hessian only at the figure's epoch
    assert counts["train"] == 3
    assert counts["hessian"] == 3
    assert "evaluate" not in counts


def test_hessian_shards_plan(workdir, tiny):
    """shards: 2 -> two shard jobs per (run, epoch) and one local merge, named by the rules;
    more shards than mini-batches fails before any job, naming the key and the allowed values."""
    dry = _snakemake(workdir, "-n", "-p", "figures/demo/fig_hessian.pdf", "--config", "probes__hessian__shards=2")
    assert dry.returncode == 0, dry.stderr
    out = dry.stdout + dry.stderr
    counts = _job_counts(out)
    assert counts["hessian_shard"] == 6 and counts["hessian"] == 3
    assert "--shard 0/2" in out and "--shard 1/2" in out and "vitprobe merge --probe hessian" in out
    assert re.search(r"runs/[^/ ]+/shards/hessian_e1\.shard1of2\.parquet", out)
    bad = _snakemake(workdir, "-n", "--config", "probes__hessian__shards=3")
    assert bad.returncode != 0
    assert "probes.hessian.shards: 3 exceeds the 2 mini-batches" in bad.stderr and "allowed: 1..2" in bad.stderr


def test_pipeline_runs_end_to_end(workdir, tiny):
    run = _snakemake(workdir)
    R = workdir / "results/demo"
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    hessian = pd.read_parquet(R / "hessian.parquet")
    grid = ["dataset", "model", "kernel_size", "fraction", "seed", "epoch"]
    assert set(grid + ["batch", "rank", "eigenvalue", "config_hash", "vitprobe_version"]) <= set(hessian.columns)
    n_runs = 7  # resnet, vit, vit 1/16, lmsa k3, vit gap, pre-act resnet, alternet
    assert len(hessian) == n_runs * 2 * 2 * 3  # runs x epochs x batches x k
    assert not hessian.duplicated(grid + ["batch", "rank"]).any()
    assert np.isfinite(hessian["eigenvalue"]).all()
    # sorted by magnitude within every batch
    for _, g in hessian.groupby(grid + ["batch"]):
        mags = g.sort_values("rank")["eigenvalue"].abs().to_numpy()
        assert (np.diff(mags) <= 1e-9 * mags.max()).all()
    assert set(hessian["kernel_size"]) == {0, 3, 8}  # k=8: the GAP run of fig_gap
    assert sorted(hessian["fraction"].unique()) == [1 / 16, 1.0]

    # hessian_summary: one row per (run, epoch) whose NEP/APE are those of the pooled eigenvalues
    summary = pd.read_parquet(R / "hessian_summary.parquet").set_index(grid)
    assert len(summary) == n_runs * 2 and summary.index.is_unique
    for key, g in hessian.groupby(grid):
        v = g["eigenvalue"].to_numpy()
        row = summary.loc[key]
        assert row["nep"] == pytest.approx((v < 0).mean()) and row["n_eigenvalues"] == len(v)
        assert row["ape"] == pytest.approx(v[v > 0].mean())
    assert np.isfinite(summary["trace"]).all()
    assert (summary["trace_samples"] == tiny["probes"]["hessian"]["trace_samples"]).all()

    ev = pd.read_parquet(R / "eval.parquet")
    assert len(ev) == n_runs and (ev["epoch"] == 2).all()
    assert ev["error"].between(0, 100).all() and (ev["nll_train"] > 0).all()
    # intervals at aggregation (from eval_images), and the scorecard of every claim
    assert (ev["error_low"] <= ev["error"]).all() and (ev["error"] <= ev["error_high"]).all()
    assert (ev["nll_test_low"] <= ev["nll_test"]).all() and (ev["interval_level"] == 0.95).all()
    assert len(pd.read_parquet(R / "eval_images.parquet")) == n_runs * 60  # 6 test images x 10 classes
    card = pd.read_parquet(R / "scorecard.parquet").set_index("claim")
    assert list(card.index) == list(claims.CLAIMS) and card["verdict"].isin(stats.VERDICTS).all()
    assert set(card.index[card["verdict"] == "n/a"]) == {"alternet_more_robust"}  # no CIFAR-C here
    assert "needs table corruption_images" in card.loc["alternet_more_robust", "missing"]
    assert (workdir / "figures/demo/scorecard.md").read_text().startswith("The paper's claims on these runs: ")

    log = pd.read_parquet(R / "train_log.parquet")
    assert len(log) == n_runs * 2

    pdf = workdir / "figures/demo/fig_hessian.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    for run_dir in (R / "runs").iterdir():
        assert sorted(p.name for p in (run_dir / "ckpt").iterdir()) == ["e0.pt", "e1.pt", "e2.pt"]

    again = _snakemake(workdir, "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    _check_other_invocations_plan_nothing(workdir)
    _check_logs(R)

    _check_report(workdir, tiny["figures"])

    # a changed training config retrains from scratch (a fresh state dir), it does not resume
    import copy
    changed = copy.deepcopy(tiny)
    changed["train"]["lr"] *= 2
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(changed))
    try:
        target = "results/demo/runs/synthetic-vit_demo-k0-f1of16-s0/train_log.parquet"
        rerun = _snakemake(workdir, target)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        log = (R / "logs/train/synthetic-vit_demo-k0-f1of16-s0.log").read_text()
        assert "resuming" not in log
        assert len(list((R / "runs/synthetic-vit_demo-k0-f1of16-s0/.train").iterdir())) == 2
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny))


EDITED_RUN = "synthetic-vit_demo-k0-f1of16-s0"


def _edited(tiny, key, value, pin=True):
    """The tiny config with one key changed; with `pin`, every probe's epochs pinned to the tiny
    run's, so that `train.epochs` can change without moving the probes' (and figures') epochs."""
    import copy
    cfg = copy.deepcopy(tiny)
    for spec in cfg["probes"].values() if pin else ():
        spec.setdefault("epochs", [tiny["train"]["epochs"]])
    section, name = key.split(".")
    cfg[section][name] = value(cfg[section][name]) if callable(value) else value
    return cfg


@pytest.mark.parametrize("key, value, ckpts", [
    ("train.epochs", 3, ["e0.pt", "e1.pt", "e2.pt", "e3.pt"]),  # adds e3.pt, of which Snakemake has no record
    ("train.checkpoint_epochs", [1, 2], None),  # None: planned only (each run costs a training)
    ("train.lr", lambda lr: lr * 3, None),
])
def test_a_changed_training_key_retrains_and_reruns_what_reads_it(workdir, tiny, key, value, ckpts):
    """After the finished tiny grid (test_pipeline_runs_end_to_end): the edit plans the run's
    training and its probe job (nothing else) and says why in one short line; run (the first
    case), the run's checkpoints and tables then carry the new training spec's hash."""
    from vitprobe.config.identity import Run, train_hash
    from vitprobe.config.load import load
    R = workdir / "results/demo"
    target = f"results/demo/runs/{EDITED_RUN}/eval_e2.parquet"
    edited = _edited(tiny, key, value)
    (workdir / "edited.yaml").write_text(yaml.safe_dump(edited))
    try:
        def snake(*args):
            cmd = [sys.executable, "-m", "snakemake", "--cores", "2", target, "--configfile", "edited.yaml", *args]
            return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        dry = snake("-n")
        out = dry.stdout + dry.stderr
        assert dry.returncode == 0, out[-3000:]
        assert _job_counts(out) == {"train_spec": 1, "train": 1, "evaluate": 1, "total": 3}, out[-3000:]
        reasons = [line for line in out.splitlines() if "Params have changed" in line]
        assert reasons and all(len(line) < 250 and f"'{key}=" in line for line in reasons), reasons
        if ckpts is None:
            return
        run = snake()
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        # (a checkpoint epoch dropped from the config stays where it was: not deleted, not an output)
        assert set(ckpts) <= {p.name for p in (R / f"runs/{EDITED_RUN}/ckpt").iterdir()}
        _, plan = load(workdir / "edited.yaml")
        expected = train_hash(plan.train_spec(Run.parse(EDITED_RUN)))
        assert set(pd.read_parquet(workdir / target)["config_hash"]) == {expected}
        again = snake("-n")
        assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    finally:
        (workdir / "edited.yaml").unlink()


def test_a_changed_probe_key_retrains_nothing(workdir, tiny):
    edited = _edited(tiny, "probes.eval", lambda spec: {**spec, "batch_size": 7}, pin=False)
    (workdir / "edited.yaml").write_text(yaml.safe_dump(edited))
    try:
        target = "results/demo/runs/synthetic-resnet_demo-k0-f1-s0/eval_e2.parquet"
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "-n", target, "--configfile", "edited.yaml"]
        dry = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        out = dry.stdout + dry.stderr
        assert dry.returncode == 0, out[-3000:]
        assert _job_counts(out) == {"evaluate": 1, "total": 1}, out[-3000:]
        assert "'probe.batch_size=7'" in out
    finally:
        (workdir / "edited.yaml").unlink()


def _check_other_invocations_plan_nothing(workdir):
    """Job signatures hold nothing install- or machine-specific: the `snakemake` script instead
    of `python -m snakemake`, and another path to the venv and to the checkout (symlinks, as
    after moving them) plan nothing."""
    venv = Path(sys.prefix)
    links = workdir.parent / f"{workdir.name}-links"
    links.mkdir(exist_ok=True)
    for name, target in (("venv", venv), ("checkout", workdir)):
        if not (links / name).exists():
            (links / name).symlink_to(target, target_is_directory=True)
    for cmd, cwd in [([str(venv / "bin/snakemake")], workdir),
                     ([str(links / "venv/bin/python"), "-m", "snakemake"], links / "checkout")]:
        out = subprocess.run([*cmd, "--configfile", "tiny.yaml", "-n", "-c1"], cwd=cwd, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "Nothing to be done" in out.stdout + out.stderr, (cmd, cwd, (out.stdout + out.stderr)[-3000:])


def _check_logs(results):
    """Every job's log says something: a start and a result line for the probes (with the
    progress bar in between), the epochs for training."""
    logs = sorted((results / "logs").rglob("*.log"))
    assert logs and not [p for p in logs if p.stat().st_size == 0], [p for p in logs if p.stat().st_size == 0]
    for probe in ("hessian", "hessian_blocks", "evaluate", "fourier", "variance", "robustness", "landscape"):
        for log in (results / "logs" / probe).glob("*.log"):
            text = log.read_text()
            assert "100%" in text and "wrote" in text, (log, text[-1000:])
    # every `vitprobe` job ran in the job server (vitprobe.jobserver) and ended with its CPU line
    server = (results / "logs/job_server.log").read_text()
    served = int(re.search(r"stopped after (\d+) commands", server)[1])
    cpu_lines = [p for p in logs if re.search(r"^vitprobe cpu \S+: .* \(job server\)$", p.read_text(), re.M)]
    assert served == len(cpu_lines) > 20, (served, len(cpu_lines), server)
    own = [p for p in logs if "(own process)" in p.read_text() and p.name != "job_server.log"]  # the server's own
    assert not own, own


def _check_report(workdir, figures):
    """`snakemake --report report.zip` holds every figure and renders its caption cleanly."""
    rep = _snakemake(workdir, "--report", "report.zip")
    log = rep.stdout + rep.stderr
    assert rep.returncode == 0, log[-3000:]
    assert "ERROR/" not in log and "WARNING/" not in log, log  # docutils problems in a caption
    with zipfile.ZipFile(workdir / "report.zip") as z:
        names = z.namelist()
        page = z.read("report/report.html").decode()
    assert set(figures) == {Path(n).stem for n in names if n.endswith(".png")}, names
    assert any(n.endswith("scorecard.html") for n in names), names
    assert "vitprobe reproduces" in page  # the workflow description, with the config and dataset
    flat = " ".join(page.replace("\\n", " ").split())
    assert "config <strong>tiny.yaml</strong>, dataset <strong>synthetic</strong>, 7 runs" in flat
    # the scorecard first
    assert "The paper's claims on these runs: " in flat and f"(of {len(claims.CLAIMS)} claims)." in flat
    # each figure's entry in the report's data: {"filename": ..., "caption": "<p>...</p>"}
    entries = re.findall(r'"filename": "([^"]+)\.png"[^{}]*?"caption": ("(?:[^"\\]|\\.)*")', page)
    shown = {fig: " ".join(re.sub("<[^>]+>", "", html.unescape(json.loads(c))).split()) for fig, c in entries}
    for fig in figures:
        caption = " ".join((workdir / f"workflow/report/{fig}.rst").read_text().replace("``", "").split())
        assert caption[:200] in shown.get(fig, ""), (fig, shown.get(fig))


# The pages whose ```bash and ```python blocks the tests run as written: the README and the
# Python API page its "Analyse your own model" section links to.
SNIPPET_PAGES = ("README.md", "docs/guide/api.md")


def _snippets(lang):
    """(page, code) of every ```<lang> block of SNIPPET_PAGES."""
    return [(page, code) for page in SNIPPET_PAGES
            for code in re.findall(rf"```{lang}\n(.*?)```", (REPO / page).read_text(), re.S)]


def _own_grid(workdir):
    """mine.yaml as the README's "Adapt it" makes it: config.yaml with two experiments kept
    and the figures that draw only them."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    kept = {"inductive_bias", "data_size"}
    cfg["experiments"] = {n: e for n, e in cfg["experiments"].items() if n in kept}
    cfg["figures"] = {n: f for n, f in cfg["figures"].items() if set(f.get("experiments", [])) <= kept}
    assert "fig_hessian" in cfg["figures"] and "search" in cfg  # the search block stays, as in a copy
    (workdir / "mine.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


def test_readme_commands_run_as_written(workdir, tiny):
    """Every command of the ```bash blocks of the README and the API page, in the tiny demo's workdir (after
    test_pipeline_runs_end_to_end): the demo profile is the tiny config there, mine.yaml the
    README's own grid; Snakemake commands that would train get -n (their arguments, targets and
    config files are parsed as written). `make demo`/`make test` are what CI runs."""
    blocks = [code for _, code in _snippets("bash")]
    commands = [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line.strip()]
    commands = [c for c in commands if not c.startswith("make ")]
    assert len(commands) >= 8, commands
    from vitprobe.config.load import load
    _own_grid(workdir)
    hessian_runs = len(load(workdir / "mine.yaml")[1].figure_runs("fig_hessian"))
    demo = workdir / "profiles/demo/demo.yaml"
    original = demo.read_text()
    demo.write_text((workdir / "tiny.yaml").read_text())
    try:
        for command in commands:
            args = command.split()
            args[0] = args[0].replace(".venv/bin/", f"{sys.prefix}/bin/")
            trains = "snakemake" in args[0] and "--report" not in args
            out = subprocess.run(args + (["-n"] if trains else []), cwd=workdir, capture_output=True, text=True)
            log = out.stdout + out.stderr
            assert out.returncode == 0, (command, log[-3000:])
            if "figures/fig_hessian.pdf" in args:  # the target is planned, with only the runs it needs
                counts = _job_counts(log)
                assert counts["fig_hessian"] == 1 and counts["train"] == hessian_runs, counts
            if args[-1] == "mine.yaml" and "-n" in args:  # all: no figure draws the search, none planned
                assert "search_step" not in _job_counts(log) and "search_score" not in log, log[-3000:]
    finally:
        demo.write_text(original)
    assert (workdir / "report.zip").stat().st_size > 0


def test_readme_python_snippets_run_on_the_demo_results(workdir, tiny, monkeypatch):
    """Every ```python block of the README and the API page, run where the (tiny) demo wrote its results."""
    blocks = _snippets("python")
    assert len(blocks) >= 2
    assert (workdir / "results/demo/eval.parquet").exists(), "run test_pipeline_runs_end_to_end first"
    monkeypatch.chdir(workdir)
    names = {}
    for page, code in blocks:
        namespace = {}
        exec(compile(code, page, "exec"), namespace)
        names.update(namespace)
    assert names["logits"].shape == (2, 10)  # the load_checkpoint snippet ran to its end


def test_report_shows_a_figure_in_a_browser(workdir, tiny, tmp_path):
    """The self-contained report.html in headless Chromium: its home page names the config and
    dataset; a figure opened as from "Results" shows the figure itself (its series' colours)."""
    import os

    import report_view

    from vitprobe.figures.style import PALETTE
    if report_view.chromium() is None:
        if os.environ.get("VITPROBE_REQUIRE_CHROMIUM") == "1":
            pytest.fail("VITPROBE_REQUIRE_CHROMIUM=1, but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    assert (workdir / "figures/demo/fig_hessian.png").exists(), "run test_pipeline_runs_end_to_end first"
    rep = _snakemake(workdir, "--report", "report.html")
    assert rep.returncode == 0, (rep.stdout + rep.stderr)[-3000:]
    home = report_view.screenshot(workdir / "report.html", tmp_path / "home.png")
    fig = report_view.screenshot(workdir / "report.html", tmp_path / "fig.png", figure="fig_hessian.png")
    shutil.copy(fig, workdir / "report_fig_hessian.png")  # for a look: pytest --basetemp=...
    for colour in PALETTE[:2]:  # ResNet and ViT series of the spectra
        on_figure, on_home = report_view.colour_pixels(fig, colour), report_view.colour_pixels(home, colour)
        assert on_figure > 150 and on_figure > 5 * on_home, (colour, on_figure, on_home)


@pytest.mark.parametrize("target, says", [
    ("figures/demo/fig_hesian.pdf", "the config makes no such figure; did you mean figures/demo/fig_hessian.pdf?"),
    ("figures/fig_hessian.pdf", "the config makes no such figure; did you mean figures/demo/fig_hessian.pdf?"),
    ("results/demo/hesian.parquet", "the config makes no such table; did you mean results/demo/hessian.parquet?"),
    # spelled right, not configured: not a typo
    ("figures/demo/fig_corruption.pdf", "fig_corruption is one of vitprobe's figures, but this config does not "
     "configure it: add a figures.fig_corruption block"),
])
def test_a_target_the_config_does_not_make_names_what_it_makes(workdir, tiny, target, says):
    out = _snakemake(workdir, "-n", target)
    assert out.returncode != 0
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert last.startswith(f"vitprobe: {target}: {says}"), last
    assert ("figures/demo/fig_gap.pdf" if "figure" in says else "results/demo/eval.parquet") in last, last


def test_bad_config_fails_before_any_job(workdir, tiny):
    import copy
    bad = copy.deepcopy(tiny)
    bad["experiments"]["data_size"]["fractions"] = [2]
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "bad.yaml", "-c1", "-n"]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    assert out.returncode != 0
    assert "experiments.data_size.fractions.0" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def paper_dry_run(workdir):
    """`snakemake -n` of the paper grid (config.yaml, the default config), its output: planned
    once for the two tests that read it (a dry run of the whole grid costs ~15 CPU-s)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=workdir,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


def _run_ids(dry_run_output: str) -> set:
    return set(re.findall(r"wildcards: run=([\w.-]+)", dry_run_output))


def _planned_runs(workdir, configfile):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "-c1", "--configfile", configfile],
                         cwd=workdir,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return _run_ids(out.stdout + out.stderr)


def _check_config_runs(workdir, configfile):
    out = subprocess.run([sys.executable, "-m", "vitprobe", "check-config", configfile, "--runs"], cwd=workdir,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {line for line in out.stdout.splitlines() if re.fullmatch(r"[a-z0-9_]+-[a-z0-9_]+-k\d+-\S+", line)}


def test_the_config_you_pass_is_the_config(workdir, tiny, paper_config, paper_dry_run):
    """A copy of config.yaml that keeps one experiment plans that experiment's runs, nothing of
    the default config.yaml; `vitprobe check-config FILE --runs` lists exactly those runs (for
    config.yaml: those of the paper grid's dry run; nothing of it exists in the workdir, so
    --forceall would plan the same)."""
    paper_config.pop("search")  # a search would add its base candidate
    mine = {**paper_config, "experiments": {"gap": paper_config["experiments"]["gap"]},
            "figures": {"fig_gap": paper_config["figures"]["fig_gap"]}}
    (workdir / "mine.yaml").write_text(yaml.safe_dump(mine))
    planned = _planned_runs(workdir, "mine.yaml")
    assert planned == {"cifar100-vit_ti_cifar-k0-f1-s0", "cifar100-vit_ti_gap_cifar-k0-f1-s0"}
    assert _check_config_runs(workdir, "mine.yaml") == planned
    assert _check_config_runs(workdir, "tiny.yaml") == _planned_runs(workdir, "tiny.yaml")
    assert _check_config_runs(workdir, "config.yaml") == _run_ids(paper_dry_run)


def test_paper_grid_dry_run_plans_everything(paper_dry_run):
    counts = _job_counts(paper_dry_run)
    assert counts["train"] == 25 + 1  # every run of config.yaml, shared runs once; the search's base candidate
    assert counts["hessian"] == 25 * 3 and counts["evaluate"] == 25 * 4
    assert counts["fig_hessian"] == 1 and counts["prepare_data"] == 1


def test_slurm_executor_without_slurm_commands_says_so(workdir, tiny, tmp_path):
    """The Slurm executor where sbatch & co. are not on PATH: one line, before any submission."""
    bin_dir = tmp_path / "bin"  # the bare minimum Snakemake itself needs
    bin_dir.mkdir()
    for tool in ("which", "bash", "sh", "env", "uname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", "--executor", "slurm",
                          "-j1", "--forceall", "data/synthetic.ready.json"], cwd=workdir, capture_output=True,
                         text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path),
                                         **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}})
    assert out.returncode == 1
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert last.startswith("vitprobe: the Slurm executor needs sbatch, squeue, scancel on PATH"), last
    assert "Traceback" not in out.stdout + out.stderr


# ---- models vitprobe did not train ------------------------------------------------------------

def uncomment_blocks(text: str) -> str:
    """config.yaml with its commented-out blocks ("To use, uncomment the lines below") active."""
    out, active = [], False
    for line in text.splitlines():
        if active and not line.strip():
            active = False
        elif active:
            line = re.sub(r"^(\s*)# ?", r"\1", line, count=1)
        elif "To use, uncomment the lines below" in line:
            active = True
        out.append(line)
    return "\n".join(out) + "\n"


def test_config_yaml_imagenet_and_release_blocks_plan_no_training(workdir):
    text = uncomment_blocks((REPO / "config.yaml").read_text())
    (workdir / "blocks.yaml").write_text(text)
    figures = [f"figures/{f}_{suffix}.pdf" for suffix, names in
               [("imagenet", ["fig_fourier", "fig_robustness", "fig_variance"]),
                ("release", ["fig_fourier", "fig_variance", "fig_hessian"])] for f in names]
    out = subprocess.run([sys.executable, "-m", "snakemake", *figures, "-n", "-c1", "--configfile", "blocks.yaml"],
                         cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    counts = _job_counts(out.stdout + out.stderr)
    assert "train" not in counts and counts["import_weights"] == 8
    assert counts["fourier"] == 8 and counts["robustness"] == 2 and counts["variance"] == 8
    assert counts["hessian"] == 4 and counts["prepare_data"] == 2  # imagenet (checked) and cifar100
    assert "imagenet-pit_ti_timm-k0-f1-s0" in out.stdout and "cifar100-swin_ti_release-k0-f1-s0" in out.stdout


def test_timm_model_on_an_image_folder_draws_figures_without_training(workdir):
    """weights: init (offline) timm ViT and ResNet on a class-folder set the test writes."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("n01", "n02"):
        (workdir / "val" / c).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (60, 70 + i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(workdir / "val" / c / f"{i}.JPEG")
    config = {
        "data": {"dataset": "synthetic", "root": "data", "download": False, "imagenet_dir": "val"},
        "results_dir": "results/timm", "figures_dir": "figures/timm",
        "models": {"vit_init": {"arch": "vit_tiny_patch16_224", "weights": "init", "kwargs": {"depth": 2}},
                   "rn_init": {"arch": "resnet18", "weights": "init"}},
        "experiments": {"imagenet": {"dataset": "imagenet", "models": ["vit_init", "rn_init"]}},
        "train": {"epochs": 1, "warmup_epochs": 0, "checkpoint_epochs": [1]},
        "probes": {"fourier": {"n_images": 5}, "robustness": {"n_images": 5, "freqs": [0.5], "batch_size": 4}},
        "figures": {"fig_fourier_imagenet": {"figure": "fig_fourier", "experiments": ["imagenet"], "epoch": 0,
                                             "series": [{"label": "ViT", "model": "vit_init"},
                                                        {"label": "ResNet", "model": "rn_init"}]},
                    "fig_robustness": {"experiments": ["imagenet"], "epoch": 0,
                                       "series": [{"label": "ViT", "model": "vit_init"}]}},
    }
    (workdir / "timm.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-c1", "--configfile", "timm.yaml"]
    dry = subprocess.run([*cmd, "-n"], cwd=workdir, capture_output=True, text=True)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    counts = _job_counts(dry.stdout + dry.stderr)
    assert "train" not in counts and counts["import_weights"] == 2 and counts["prepare_data"] == 1
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    for fig in ("fig_fourier_imagenet", "fig_robustness"):
        assert (workdir / f"figures/timm/{fig}.pdf").stat().st_size > 1000
    fourier = pd.read_parquet(workdir / "results/timm/fourier.parquet")
    assert set(fourier["weights"]) == {"init"} and set(fourier["epoch"]) == {0}
    assert set(fourier["model"]) == {"vit_init", "rn_init"} and set(fourier["n_images"]) == {5}
    assert set(fourier.query("model == 'vit_init'")["kind"]) == {"embed", "msa", "mlp"}
    assert not (workdir / "results/timm/runs/imagenet-vit_init-k0-f1-s0/train_log.parquet").exists()
