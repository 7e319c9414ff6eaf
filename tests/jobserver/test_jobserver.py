"""The job server (vitprobe.jobserver): a served command has what its own process would have
(arguments, directory, environment, umask, stdout/stderr, exit status, signals, fresh random
seeds), a client that cannot be served runs the command itself, and a real probe served
writes the same table as in its own process."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from vitprobe import jobserver

HERE = Path(__file__).parent
THREADS = {k: "1" for k in jobserver.THREAD_ENV}
# A client: runs argv through the server at $ADDRESS; 99 where it was not served.
CLIENT = ("import os, sys; from vitprobe import jobserver; "
          "r = jobserver.run_served(os.environ['ADDRESS'], sys.argv[1:]); sys.exit(99 if r is None else r.code)")


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        assert time.time() < end, f"no socket at {path} after {seconds} s"
        time.sleep(0.05)


@pytest.fixture
def server():
    """(address, process) of a server running tests/jobserver/served_commands.py's `run`."""
    folder = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))  # a socket path has at most 107 bytes
    address = folder / "s.sock"
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import served_commands; from vitprobe import jobserver; "
            f"job = jobserver.serve({str(address)!r}, preload=['numpy']); "
            f"sys.exit(job.run(served_commands.run)) if job else None")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **THREADS},
                            stderr=subprocess.PIPE, text=True)
    _wait_for(address, proc)
    yield address, proc
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and not address.exists() and not folder.exists(), err


def _client(address, *argv, env=None, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-c", CLIENT, *argv], env={**os.environ, **THREADS, "ADDRESS": str(address),
                          **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60, **kwargs)


def _start_client(address, *argv):
    return subprocess.Popen([sys.executable, "-c", CLIENT, *argv],
                            env={**os.environ, **THREADS, "ADDRESS": str(address)}, stderr=subprocess.PIPE, text=True)


def test_a_served_command_has_the_clients_arguments_directory_environment_and_output(server, tmp_path):
    address, _ = server
    done = _client(address, "echo", "a b", "c", env={"SERVED_TEST": "here"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"a b c {tmp_path}\n"
    assert done.stderr == "here\n"
    # the next one does not see the first one's variable: each gets its client's environment
    assert _client(address, "echo").stderr == "<unset>\n"
    # an environment larger than a socket buffer (Linux: ~200 kB) arrives whole
    big = {f"BIG_{i}": "x" * 100_000 for i in range(4)}
    assert _client(address, "echo", env={**big, "SERVED_TEST": "big"}).stderr == "big\n"


def test_exit_status_usage_errors_and_crashes_come_back(server):
    address, _ = server
    assert _client(address, "exit", "7").returncode == 7
    assert _client(address, "usage").returncode == 2
    crash = _client(address, "crash")
    assert crash.returncode == 1
    assert "RuntimeError: served crash" in crash.stderr and "Traceback" in crash.stderr


def test_a_command_ends_as_a_process_does_atexit_handlers_and_threads(server):
    address, _ = server
    done = _client(address, "atexit")
    assert done.returncode == 4
    assert done.stdout == "thread ended\natexit ran\n"  # threads joined first, then the handlers


def test_umask_and_random_seeds_are_a_fresh_processs(server):
    address, _ = server
    old = os.umask(0o027)
    try:
        assert _client(address, "umask").stdout.strip() == "0o27"
    finally:
        os.umask(old)
    draws = {_client(address, "random").stdout for _ in range(3)}
    assert len(draws) == 3, draws  # forks of one process would draw the same numbers


def test_the_clients_sigterm_reaches_the_command(server, tmp_path):
    address, _ = server
    marker, pid_file = tmp_path / "term", tmp_path / "pid"
    client = _start_client(address, "trap", str(marker), str(pid_file))
    _wait_for(pid_file, client, 30)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 3
    assert marker.read_text() == "term"


def test_a_command_dying_of_the_signal_takes_its_client_with_it(server, tmp_path):
    address, _ = server
    pid_file = tmp_path / "pid"
    client = _start_client(address, "sleep", str(pid_file))
    _wait_for(pid_file, client, 30)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == -signal.SIGTERM  # as if the command had been the client's own process


def test_killing_the_client_stops_the_command(server, tmp_path):
    address, _ = server
    pid_file = tmp_path / "pid"
    client = _start_client(address, "sleep", str(pid_file))
    _wait_for(pid_file, client, 30)
    worker = int(pid_file.read_text())
    client.kill()  # SIGKILL: nothing is forwarded; the worker sees its client gone
    client.wait(timeout=30)
    end = time.time() + 30
    while _running(worker):
        assert time.time() < end, f"worker {worker} still runs without its client"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; the server reaps it at its next second


def test_other_thread_settings_or_no_server_mean_the_client_runs_it_itself(server, tmp_path):
    address, _ = server
    assert _client(address, "exit", "0", env={"OMP_NUM_THREADS": "2"}).returncode == 99
    assert _client(address, "exit", "0", env={"PYTHONHASHSEED": "3"}).returncode == 99
    assert _client(tmp_path / "none.sock", "exit", "0").returncode == 99


def test_the_server_stops_when_its_parent_is_gone(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))
    address = folder / "s.sock"
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = (f"import sys; from vitprobe import jobserver; "
            f"job = jobserver.serve({str(address)!r}, parent={parent.pid}); "
            f"sys.exit(job.run(lambda argv: 0)) if job else None")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    _wait_for(address, proc)
    parent.kill()
    parent.wait()
    assert proc.wait(timeout=30) == 0
    assert "stopped after 0 commands" in proc.stderr.read()
    assert not address.exists() and not folder.exists()  # the server removes its private directory


# ---- the real thing: `vitprobe serve` and the `vitprobe` executable -------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import tiny_vit_config, train_tiny_run
    tmp = tmp_path_factory.mktemp("served_probe")
    probes = {"hessian": {"n_batches": 2, "batch_size": 8, "k": 3, "trace_samples": 3, "epochs": [1]},
              "eval": {"batch_size": 64, "epochs": [1]}}
    return train_tiny_run(tiny_vit_config(tmp, probes, epochs=1), tmp)


def test_a_probe_served_writes_the_table_its_own_process_writes(trained, tmp_path):
    from vitprobe import results
    from vitprobe.launch import CPU_ENV, CPU_PREFIX
    plan, run, ckpt = trained
    exe = Path(sys.executable).with_name("vitprobe")
    folder = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))
    address = folder / "s.sock"
    env = {**os.environ, **THREADS, CPU_ENV: "1"}
    server = subprocess.Popen([str(exe), "serve", "--socket", str(address)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(address, server)
        tables = {}
        for how, extra in (("own process", {}), ("job server", {jobserver.ENV: str(address)})):
            out = tmp_path / how.replace(" ", "_")
            cmd = [str(exe), "hessian", "--spec", json.dumps(plan.probe_spec(run, "hessian")), "--device", "cpu",
                   "--checkpoint", str(ckpt), "--out", f"hessian={out}/hessian.parquet",
                   "--out", f"hessian_summary={out}/summary.parquet"]
            done = subprocess.run(cmd, env={**env, **extra}, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            cpu = done.stderr.strip().splitlines()[-1]
            assert cpu.startswith(f"{CPU_PREFIX} hessian: ") and cpu.endswith(f"({how})"), cpu
            tables[how] = [pd.read_parquet(out / f) for f in ("hessian.parquet", "summary.parquet")]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not folder.exists()  # the server removed its private directory
    ignored = [c.name for c in results.PROVENANCE_COLUMNS] + [
        c.name for cols in results.TABLES.values() for c in cols if c.unit in ("s", "1/s")]
    for own, served in zip(tables["own process"], tables["job server"]):
        pd.testing.assert_frame_equal(own.drop(columns=ignored, errors="ignore"),
                                      served.drop(columns=ignored, errors="ignore"), check_exact=True)
