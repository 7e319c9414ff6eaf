"""Ctrl-C at the console: a real local run, SIGINT to its whole process group (what a terminal
sends), ends in a few lines that say what the training saved and how to resume; a real failure
of a job is still reported whole (workflow/rules/common.smk, InterruptedJobs)."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO, tiny_vit_config

pytestmark = pytest.mark.slow

RUN = "synthetic-vit_demo-k0-f1-s0"
TARGET = "results/demo/train_log.parquet"


@pytest.fixture
def workdir(tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("workflow", "profiles/default"):  # the workflow profile: show-failed-logs, force-use-threads
        shutil.copytree(REPO / name, tmp_path / name)
    cfg = tiny_vit_config(tmp_path, {}, epochs=200)  # minutes: it is interrupted in its 2nd epoch
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _cmd(*args):
    return [sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", "--cores", "1", TARGET, *args]


def test_ctrl_c_ends_in_a_few_lines_that_say_what_was_saved_and_how_to_resume(workdir):
    log = workdir / f"results/demo/logs/train/{RUN}.log"
    # SIGINT at its default, as at a terminal, even where the tests run as a background job
    proc = subprocess.Popen(_cmd(), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (log.exists() and f"[{RUN}] epoch 1:" in log.read_text()):
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: Snakemake, the job's shell, the job
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    after = out.split("Terminating processes on user request")[1].splitlines()[1:]
    assert len(after) <= 8, out[-3000:]
    text = "\n".join(after)
    state = f"results/demo/runs/{RUN}/.train/"
    assert re.search(rf"^\[{RUN}\] interrupted at epoch \d+, step \d+ of \d+: state saved in {re.escape(state)}", text,
                     re.M), text
    assert f"to resume, run the same command again: {shlex.join(_cmd())}" in text, text
    for noise in ("Error in rule", "CalledProcessError", "--spec", "Logfile", "epoch 1/200"):
        assert noise not in out, out[-3000:]
    assert len(list((workdir / state).glob("*/resume.pt"))) == 1

    # a real failure still shows its error and its log: a damaged resume file stops the rerun
    next((workdir / state).glob("*/resume.pt")).write_bytes(b"not a state")
    rerun = subprocess.run(_cmd("--config", "job_server=false"), cwd=workdir, capture_output=True, text=True,
                           timeout=300)  # (no server to wait for: seconds less)
    assert rerun.returncode != 0
    assert "Error in rule train:" in rerun.stderr and f"Logfile {log.relative_to(workdir)}:" in rerun.stderr
    assert "to resume" not in rerun.stderr, rerun.stderr[-3000:]
