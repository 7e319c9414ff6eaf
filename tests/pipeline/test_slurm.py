"""Slurm end to end: the tiny demo grid through `snakemake --profile profiles/slurm` (plus the CI
overlay profiles/slurm/ci.yaml) on a real Slurm cluster, against a local run of the same config.

Needs a cluster with a partition `debug` that has GPU GRES: `tests/pipeline/slurm/cluster.sh up` (root,
Debian 12) starts a one-node one with two fake GPUs. Without a cluster the tests are skipped,
unless VITPROBE_REQUIRE_SLURM=1 (set by .ci/run), which turns the skip into a failure.

Test-only instrumentation, through PYTHONPATH (Slurm passes the environment on to its jobs):
a `sitecustomize` module, which Python imports at every interpreter start, and which acts only
in `vitprobe ...` processes. The package itself is unchanged. It
- records each such process's verb, arguments and environment (SLURM_JOB_ID,
  CUDA_VISIBLE_DEVICES, ...): proof of where every job ran and what it saw;
- makes one probe job (FLAKY) exit 3 on its first attempt: the retry must succeed.
The test also cancels one training job mid-run (Slurm delivers SIGTERM, as before a time limit
or on preemption); the retry must resume from the resume file, and its results must still equal
those of the uninterrupted local run.
"""

import copy
import functools
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_pipeline import _tiny_config

from vitprobe import catalog, jobserver

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PARTITION = "debug"  # profiles/slurm/ci.yaml
# What each job asks the test cluster for (2 CPUs, 2 fake GPUs: two jobs at a time).
CI_RESOURCES = {"gpus": 1, "cpus": 1,
                "train": {"mem_mb": 1000, "runtime": 10},
                "probes": {"mem_mb": 1000, "runtime": 10}}
GPU_VERBS = {"train", *catalog.PROBES}  # every job that asks for a GPU
LOCAL_VERBS = {"prepare-data", "aggregate", "plot"}
FLAKY_VERB = "eval"          # this probe of FLAKY_RUN fails on its first attempt
FLAKY_RUN = "resnet_demo-k0-f1-s0"
RESUME_RUN = "resnet_demo-k0-f1-s0"  # this training job is cancelled mid-run (the same run: one run in all)
TIMEOUT = 20 * 60
RESULTS = "results/demo"  # the tiny config keeps the demo's results_dir

SITECUSTOMIZE = r'''
# Test instrumentation (tests/pipeline/test_slurm.py): acts only in `vitprobe <verb>` processes (the
# console script the rules call, or `python -m vitprobe`).
import json, os, sys, time
_argv = list(getattr(sys, "orig_argv", []))
_args = None
if "-m" in _argv and _argv[_argv.index("-m") + 1:_argv.index("-m") + 2] == ["vitprobe"]:
    _args = _argv[_argv.index("-m") + 2:]
elif len(_argv) > 1 and os.path.basename(_argv[1]) == "vitprobe":
    _args = _argv[2:]
if _args is not None:
    _verb = _args[0] if _args else ""
    _rec = {"verb": _verb, "args": _args, "pid": os.getpid(), "time": time.time(),
            "env": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_STEP_ID", "CUDA_VISIBLE_DEVICES",
                                                   "SLURM_JOB_GPUS", "OMP_NUM_THREADS")}}
    _dir = os.environ.get("VITPROBE_TEST_EVIDENCE")
    if _dir:
        with open(os.path.join(_dir, f"{time.time_ns()}-{os.getpid()}.json"), "w") as _f:
            json.dump(_rec, _f)
    _flaky = os.environ.get("VITPROBE_TEST_FLAKY")  # "<verb>|<substring of the arguments>|<marker file>"
    if _flaky:
        _fverb, _needle, _marker = _flaky.split("|")
        if _verb == _fverb and _needle in " ".join(_args) and not os.path.exists(_marker):
            with open(_marker, "w") as _f:
                _f.write(os.environ.get("SLURM_JOB_ID", ""))
            print("tests/pipeline/test_slurm.py: injected failure of the first attempt", file=sys.stderr, flush=True)
            os._exit(3)
'''


# ---- cluster check ---------------------------------------------------------------------
@functools.cache
def _cluster_problem() -> str | None:
    """Why the Slurm tests cannot run here, or None (asked once per session)."""
    if shutil.which("sinfo") is None:
        return "no Slurm client here (sinfo is not on PATH)"
    try:
        out = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%a|%t|%G"], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        return "sinfo got no answer within 60 s (is slurmctld running?)"
    if out.returncode != 0:
        return f"no Slurm cluster answers (sinfo: {out.stderr.strip().splitlines()[-1:]})"
    rows = [line.split("|") for line in out.stdout.split()]
    if not rows:
        return f"the cluster has no partition {PARTITION!r} (the CI overlay profiles/slurm/ci.yaml submits there)"
    if not any(a == "up" and re.match(r"(idle|mix|alloc)", t) for a, t, _ in rows):
        return f"partition {PARTITION!r} has no node up: {out.stdout.strip()}"
    if not any("gpu" in g for *_, g in rows):
        return f"partition {PARTITION!r} has no GPU GRES (fake GPUs: FAKE_GPUS=2 tests/pipeline/slurm/cluster.sh up)"
    return None


def _require_cluster():
    problem = _cluster_problem()
    if problem is None:
        return
    hint = f"{problem}. Start a test cluster with `tests/pipeline/slurm/cluster.sh up` (as root, Debian 12)."
    if os.environ.get("VITPROBE_REQUIRE_SLURM") == "1":
        pytest.fail(f"VITPROBE_REQUIRE_SLURM=1, but {hint}", pytrace=False)
    pytest.skip(hint)


def test_slurm_cluster_answers():
    _require_cluster()


# ---- the two runs ----------------------------------------------------------------------
def _workdir(d: Path, cfg: dict) -> Path:
    """A copy of the workflow, with the paper's config.yaml, and the tiny config as tiny.yaml,
    passed with --configfile: it must replace config.yaml inside the Slurm jobs too (merged,
    the paper's experiments would add runs and jobs)."""
    d.mkdir(parents=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, d / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(REPO / name, d / name)
    (d / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return d


def _snakemake_cmd(*args):
    return [sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", *args]


def _stop(proc, workdir: Path):
    """Stop a Snakemake run that overran: cancel its Slurm jobs, then the process group."""
    if proc.poll() is not None:
        return
    jobs = {Path(p).stem for p in glob.glob(str(workdir / ".snakemake/slurm_logs/**/*.log"), recursive=True)}
    if jobs:
        _scancel(*sorted(jobs))
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _evidence(d: Path) -> list[dict]:
    recs = []
    for p in sorted(d.glob("*.json")):
        try:
            recs.append(json.loads(p.read_text()))
        except json.JSONDecodeError:  # being written
            pass
    return recs


def _scancel(*args):
    return subprocess.run(["scancel", *args], capture_output=True, text=True, timeout=60)


def _cancel_training_mid_run(workdir: Path, evidence: Path, run_id: str, proc, info: dict):
    """Wait for the training of `run_id` to enter its epoch loop (its epoch-0 checkpoint is in the
    state dir), then have Slurm signal the job: STOP (freeze it where it is), TERM, CONT. The
    training sees SIGTERM mid-run, saves its resume file and exits 143; the job fails."""
    deadline = time.time() + TIMEOUT
    while proc.poll() is None and time.time() < deadline:
        recs = [r for r in _evidence(evidence) if r["verb"] == "train" and run_id in " ".join(r["args"])]
        if recs and glob.glob(str(workdir / f"{RESULTS}/runs/{run_id}/.train/**/e0.pt"), recursive=True):
            rec = recs[0]
            job = rec["env"]["SLURM_JOB_ID"]
            _scancel("--signal=STOP", job)
            stat = Path(f"/proc/{rec['pid']}/stat")
            for _ in range(100):  # wait until frozen (when the node is this machine)
                if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
                    break
                time.sleep(0.02)
            info["finished_before_signal"] = (workdir / f"{RESULTS}/runs/{run_id}/train_log.parquet").exists()
            info["term"] = _scancel("--signal=TERM", job).returncode
            time.sleep(1)
            info["cont"] = _scancel("--signal=CONT", job).returncode
            info["job"] = job
            # the retry truncates the rule's log: keep what the signalled training wrote
            log = workdir / f"{RESULTS}/logs/train/{run_id}.log"
            for _ in range(600):
                info["first_log"] = log.read_text(errors="replace") if log.exists() else ""
                if "state saved" in info["first_log"]:
                    break
                time.sleep(0.1)
            return
        time.sleep(0.05)


def _slurm_config(demo: dict) -> dict:
    """The tiny config of the local end-to-end test, cut down to fit the time budget: one run
    (the ResNet on all the data: every rule is the same for every model, and the local
    end-to-end test runs them all), every probe once, one figure. Its training is cancelled
    and resumed, its eval fails once and is retried."""
    c = _tiny_config(demo)
    c["experiments"] = {"inductive_bias": {"models": ["resnet_demo"]}}
    fig = c["figures"]["fig_hessian"]
    fig["experiments"] = ["inductive_bias"]
    fig["series"] = [s for s in fig["series"] if s.get("model") == "resnet_demo" and str(s.get("fraction", 1)) == "1"]
    c["figures"] = {"fig_hessian": fig}  # one figure shows that the plot rules stay local
    c["probes"]["hessian"]["epochs"] = [fig["epoch"]]
    c["resources"] = CI_RESOURCES
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny config run on Slurm (with the faults injected) and locally."""
    _require_cluster()
    base = tmp_path_factory.mktemp("slurm")
    cfg = _slurm_config(copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text())))
    from vitprobe.config.load import validate
    plan = validate(copy.deepcopy(cfg))
    run_ids = [r.id for r in plan.runs]
    flaky_run = next(r for r in run_ids if r.endswith(FLAKY_RUN))
    resume_run = next(r for r in run_ids if r.endswith(RESUME_RUN))

    local = _workdir(base / "local", cfg)
    slurm = _workdir(base / "slurm", cfg)
    inject, evidence = base / "inject", base / "evidence"
    inject.mkdir()
    evidence.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    marker = base / "flaky.failed-once"
    # without the thread variables the tests set for their own subprocesses (tests/conftest.py):
    # the Slurm jobs' OMP_NUM_THREADS must come from the profile (test_gpu_jobs_saw_cuda_visible_devices)
    env = {k: v for k, v in os.environ.items() if k not in jobserver.THREAD_ENV}
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])),
               VITPROBE_TEST_EVIDENCE=str(evidence), VITPROBE_TEST_FLAKY=f"{FLAKY_VERB}|{flaky_run}|{marker}")

    t0 = time.time()
    with open(local / "snakemake.out", "w") as lout, open(slurm / "snakemake.out", "w") as sout:
        # the local run goes alongside: the Slurm run mostly waits (submission, status polling)
        lproc = subprocess.Popen(_snakemake_cmd("--cores", "2"), cwd=local, stdout=lout, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        sproc = subprocess.Popen(_snakemake_cmd("--profile", "profiles/slurm", "--profile", "profiles/slurm/ci.yaml"),
                                 cwd=slurm, env=env, stdout=sout, stderr=subprocess.STDOUT, start_new_session=True)
        cancel = {}
        canceller = threading.Thread(target=_cancel_training_mid_run,
                                     args=(slurm, evidence, resume_run, sproc, cancel), daemon=True)
        canceller.start()
        try:
            for p in (sproc, lproc):
                p.wait(timeout=max(1, TIMEOUT - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            _stop(sproc, slurm)
            _stop(lproc, local)
        canceller.join(timeout=5)
    return {
        "local": local, "slurm": slurm, "evidence": _evidence(evidence), "marker": marker, "cancel": cancel,
        "rc": {"slurm": sproc.returncode, "local": lproc.returncode}, "seconds": time.time() - t0,
        "plan": plan, "run_ids": run_ids, "flaky_run": flaky_run, "resume_run": resume_run,
        "out": {k: (d / "snakemake.out").read_text() for k, d in (("slurm", slurm), ("local", local))},
    }


def _tail(text: str, n: int = 4000) -> str:
    return text[-n:]


def test_both_runs_succeed(runs):
    print(f"slurm + local runs: {runs['seconds']:.0f} s")
    assert runs["rc"]["local"] == 0, _tail(runs["out"]["local"])
    assert runs["rc"]["slurm"] == 0, _tail(runs["out"]["slurm"])


def _gpu_records(runs):
    return [r for r in runs["evidence"] if r["verb"] in GPU_VERBS]


def _output_of(rec: dict) -> str:
    """The train job's log table, or a probe job's first table (`--out TABLE=PATH`)."""
    args = rec["args"]
    return args[args.index("--log" if rec["verb"] == "train" else "--out") + 1].split("=", 1)[-1]


def _expected_gpu_outputs(runs) -> set[str]:
    from vitprobe.config.paths import Layout
    plan, layout = runs["plan"], Layout(RESULTS)
    outs = {layout.train_log.format(run=r) for r in runs["run_ids"]}
    outs |= {layout.probe_table.format(run=r, table=catalog.tables_of(p)[0], epoch=e)  # a job's first --out
             for p in plan.probes for r in runs["run_ids"] for e in plan.probe_epochs(p)}
    return outs


def test_every_gpu_job_ran_as_a_slurm_job(runs):
    recs = _gpu_records(runs)
    assert {_output_of(r) for r in recs} == _expected_gpu_outputs(runs), "not every train/probe job ran"
    missing = [" ".join(r["args"][:1] + [_output_of(r)]) for r in recs if not r["env"]["SLURM_JOB_ID"]]
    assert not missing, f"ran outside Slurm: {missing}"
    # every job id is a real Slurm job: its log (written by Slurm, --output) and, while Slurm
    # remembers finished jobs (MinJobAge), `squeue --states=all` know it
    job_ids = {r["env"]["SLURM_JOB_ID"] for r in recs}
    logs = {Path(p).stem for p in glob.glob(str(runs["slurm"] / ".snakemake/slurm_logs/rule_*/**/*.log"),
                                             recursive=True)}
    assert job_ids <= logs, f"no Slurm log for jobs {sorted(job_ids - logs)}"
    sq = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    states = dict(line.split("|") for line in sq.stdout.split())
    min_job_age = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    m = re.search(r"MinJobAge\s*=\s*(\d+)", min_job_age)
    if m and int(m[1]) > runs["seconds"] + 60:
        assert job_ids <= set(states), f"unknown to squeue: {sorted(job_ids - set(states))}"
        assert {states[j] for j in job_ids} <= {"COMPLETED", "FAILED", "CANCELLED"}
    # the local rules ran on the submit host, not as Slurm jobs
    local = [r for r in runs["evidence"] if r["verb"] in LOCAL_VERBS]
    assert {r["verb"] for r in local} == LOCAL_VERBS
    assert not [r for r in local if r["env"]["SLURM_JOB_ID"]], "a local rule was submitted to Slurm"


def test_gpu_jobs_saw_cuda_visible_devices(runs):
    recs = _gpu_records(runs)
    assert recs
    bad = [(r["verb"], _output_of(r), r["env"]["CUDA_VISIBLE_DEVICES"]) for r in recs
           if not re.fullmatch(r"\d+", r["env"]["CUDA_VISIBLE_DEVICES"] or "")]
    assert not bad, f"GPU jobs without exactly one visible GPU: {bad}"
    # resources.cpus = 1: one CPU per GPU, and the job's threads follow it
    assert {r["env"]["OMP_NUM_THREADS"] for r in recs} == {"1"}


_IGNORED_UNITS = {"s", "1/s"}  # wall time and throughput differ between any two runs


def test_results_equal_the_local_run(runs):
    from vitprobe import results
    ignored = {c.name for c in results.PROVENANCE_COLUMNS}
    ignored |= {c.name for cols in results.TABLES.values() for c in cols if c.unit in _IGNORED_UNITS}
    from vitprobe.config.paths import Layout
    tables = sorted(p.name for p in (runs["local"] / RESULTS).glob("*.parquet"))
    scorecard = [Path(Layout(RESULTS).scorecard[k]).name for k in ("claims", "runs")]
    assert tables == sorted([f"{t}.parquet" for t in runs["plan"].tables] + scorecard)
    for name in tables:
        frames = []
        for side in ("slurm", "local"):
            df = pd.read_parquet(runs[side] / RESULTS / name)
            df = df.drop(columns=[c for c in df.columns if c in ignored])
            keys = [c for c in df.columns if df[c].dtype.kind in "iOUb"] or list(df.columns)
            frames.append(df.sort_values(keys + [c for c in df.columns if c not in keys]).reset_index(drop=True))
        pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True, obj=name)


def test_a_failed_job_is_retried(runs):
    assert runs["marker"].exists(), "the injected failure never fired"
    first_job = runs["marker"].read_text()
    attempts = [r for r in runs["evidence"] if r["verb"] == FLAKY_VERB and runs["flaky_run"] in " ".join(r["args"])]
    jobs = [r["env"]["SLURM_JOB_ID"] for r in sorted(attempts, key=lambda r: r["time"])]
    assert len(jobs) == 2 and jobs[0] == first_job and jobs[1] != first_job, jobs
    assert "Trying to restart job" in runs["out"]["slurm"]
    assert (runs["slurm"] / _output_of(attempts[-1])).exists()


def test_cancelled_training_resumes_from_its_resume_file(runs):
    cancel = runs["cancel"]
    assert cancel.get("job"), "the training job was never signalled"
    assert not cancel["finished_before_signal"], "the training finished before the signal; nothing to resume"
    assert cancel["term"] == 0 and cancel["cont"] == 0
    run_id = runs["resume_run"]
    attempts = sorted((r for r in runs["evidence"] if r["verb"] == "train" and run_id in " ".join(r["args"])),
                      key=lambda r: r["time"])
    jobs = [r["env"]["SLURM_JOB_ID"] for r in attempts]
    assert len(jobs) == 2 and jobs[0] == cancel["job"] and jobs[1] != jobs[0], jobs
    # the signalled training saved its state mid-run and exited; the retry resumed from it
    assert re.search(r"signal 15: state saved at epoch \d+, batch \d+", cancel["first_log"]), cancel["first_log"]
    train_log = (runs["slurm"] / f"{RESULTS}/logs/train/{run_id}.log").read_text()
    assert re.search(r"resuming at epoch \d+, step \d+", train_log), train_log[-2000:]
    # ...and its results equal the uninterrupted local run's (test_results_equal_the_local_run)
