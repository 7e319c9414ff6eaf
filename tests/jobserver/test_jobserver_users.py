"""No other local user can use a run's job server, tried as the hole was found: a real local
Snakemake run under umask 000 and 002, and user `nobody` looking for its socket, connecting
and sending a command; and each of the two checks on its own (the server's peer check with
the directory opened up behind its back; the client's checks against a socket that is not its
user's). Needs root, to act as `nobody` (CI runs as root)."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tiny_vit_config

from vitprobe import jobserver

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not jobserver.SUPPORTED,
                                reason="needs root on Linux, to act as user nobody")
HERE = Path(__file__).parent
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")

# What user nobody tries, given where the server's socket is: find it, connect to it, and
# send a command as the vitprobe client does (descriptors, then a JSON header naming this
# interpreter's fingerprint as the server's log shows it). Prints what it got as JSON.
ATTACK = r"""
import glob, json, os, socket, sys
address, python, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {"found": sorted(glob.glob("/tmp/vitprobe-*") + glob.glob("/run/user/*/vitprobe-*"))}
try:
    os.stat(address)
    out["stat"] = "ok"
except OSError as exc:
    out["stat"] = exc.strerror
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    conn.connect(address)
    out["connect"] = "ok"
except OSError as exc:
    out["connect"] = exc.strerror
else:
    try:
        socket.send_fds(conn, [b"\0"], [0, 1, 2])
        header = {"argv": argv, "cwd": "/", "env": dict(os.environ), "umask": 0, "python": python}
        conn.sendall(json.dumps(header).encode() + b"\n")
        conn.settimeout(20)
        out["answer"] = conn.recv(65536).decode()
    except OSError as exc:
        out["answer_error"] = exc.strerror
print(json.dumps(out))
"""


def _nobody():
    user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": {"PATH": "/usr/bin:/bin"}}


def _as_nobody(*argv, timeout=60):
    done = subprocess.run([SYSTEM_PYTHON, *argv], capture_output=True, text=True, timeout=timeout, cwd="/",
                          **_nobody())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _attack(address, argv, python):
    return _as_nobody("-c", ATTACK, str(address), python, json.dumps(argv))


def _fingerprint() -> str:
    """The interpreter fingerprint the venv's server has (what an attacker would copy)."""
    return subprocess.run([sys.executable, "-c", "from vitprobe import jobserver; print(jobserver._python())"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("users")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, d / name)
    shutil.copytree(REPO / "workflow", d / "workflow")
    cfg = tiny_vit_config(d, {})
    (d / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return d


@pytest.mark.parametrize("umask", [0o000, 0o002])
def test_another_user_cannot_reach_or_use_a_local_runs_job_server(workdir, umask):
    """A real `snakemake` run (its job server started at onstart); while it is held at a stop,
    nobody finds no socket it can reach, cannot connect, and gets no command run; the owner
    still can (so the server was there to attack)."""
    marker = Path(tempfile.mkdtemp(prefix="vp-target-", dir="/tmp")) / "written"
    os.chmod(marker.parent, 0o777)  # nobody could write here: a command run as root would, too
    log = workdir / "results/demo/logs/job_server.log"
    log.unlink(missing_ok=True)
    shutil.rmtree(workdir / "results", ignore_errors=True)
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", "--cores", "1",
                            "--forceall", "results/demo/train_log.parquet"],
                           cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           preexec_fn=lambda: os.umask(umask))
    try:
        address = _wait_for_server(log, run)
        run.send_signal(signal.SIGSTOP)  # hold the run (and so its server) while nobody tries
        try:
            folder = os.stat(os.path.dirname(address))
            assert folder.st_mode & 0o777 == 0o700, oct(folder.st_mode)
            got = _attack(address, ["docs", "--out", str(marker)], _fingerprint())  # a verb that writes files
            owner = subprocess.run([sys.executable, "-c", "import os, sys; from vitprobe import jobserver; "
                                    "r = jobserver.run_served(sys.argv[1], ['--version']); sys.exit(99 if r is None "
                                    "else r.code)", address], capture_output=True, text=True, timeout=60,
                                   env={**os.environ, **{k: "1" for k in jobserver.THREAD_ENV}})
        finally:
            run.send_signal(signal.SIGCONT)
        out, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out[-3000:]
    assert owner.returncode == 0 and owner.stdout.startswith("vitprobe "), (owner.returncode, owner.stderr)
    if os.path.dirname(os.path.dirname(address)) == tempfile.gettempdir():
        assert os.path.dirname(address) in got["found"]  # it saw the directory, and nothing more:
    assert got["stat"] == "Permission denied" and got["connect"] == "Permission denied", got
    assert "answer" not in got and not marker.exists()
    shutil.rmtree(marker.parent)


def _wait_for_server(log: Path, run: subprocess.Popen, seconds: float = 300) -> str:
    end = time.time() + seconds
    while time.time() < end:
        text = log.read_text() if log.exists() else ""
        if " ready at " in text:
            return text.split(" ready at ")[1].split(",")[0]
        assert run.poll() is None, f"the run ended before its job server was ready: {run.stdout.read()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no job server ready after {seconds} s")


def test_the_server_refuses_another_users_connection_even_if_it_can_connect(tmp_path):
    """The peer check alone: the server's directory and socket opened to everyone after it
    started; nobody connects and sends a command; it is closed unread, and nothing runs."""
    folder = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))
    address = folder / "s.sock"
    marker = Path(tempfile.mkdtemp(prefix="vp-target-", dir="/tmp")) / "written"
    os.chmod(marker.parent, 0o777)
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import served_commands; from vitprobe import jobserver; "
            f"job = jobserver.serve({str(address)!r}); sys.exit(job.run(served_commands.run)) if job else None")
    server = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + 120
        while not address.exists():
            assert server.poll() is None and time.time() < end
            time.sleep(0.05)
        os.chmod(folder, 0o777)
        os.chmod(address, 0o777)
        got = _attack(address, ["touch", str(marker)], _fingerprint())
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert got["connect"] == "ok" and got.get("answer", "") == "", got  # connected, then closed without a word
    assert not marker.exists()
    assert f"refused a connection from uid {pwd.getpwnam('nobody').pw_uid}" in err
    assert "stopped after 0 commands (1 connections refused)" in err
    shutil.rmtree(marker.parent)


# A listener that records whatever a client sends it, for 20 s or one connection.
LISTENER = r"""
import os, socket, sys
address, record = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(address)
os.chmod(address, 0o777)
s.listen(1)
open(record + ".ready", "w").close()
s.settimeout(20)
try:
    conn, _ = s.accept()
    conn.settimeout(5)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except OSError:
        pass
    open(record, "wb").write(data)
except OSError:
    pass
"""


@pytest.mark.parametrize("whose", ["nobody's socket", "an open directory", "nobody listening behind our names"])
def test_a_client_sends_nothing_to_a_socket_it_has_not_checked(whose):
    """VITPROBE_JOB_SERVER naming a socket another user listens at (or one in a directory others
    may enter): the command runs in the client's own process, and the listener gets not a byte
    (no descriptors, no environment)."""
    folder, records = (Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp")) for _ in range(2))
    os.chmod(records, 0o777)
    nobody = pwd.getpwnam("nobody")
    if whose == "nobody's socket":
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        os.chmod(folder, 0o700)
    else:
        os.chmod(folder, 0o777)
    address, record = folder / "s.sock", records / "record"
    if whose == "an open directory":  # our own listener, in a directory others could write to
        listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(address), str(record)])
    else:
        listener = subprocess.Popen([SYSTEM_PYTHON, "-c", LISTENER, str(address), str(record)], **_nobody())
    try:
        end = time.time() + 60
        while not Path(f"{record}.ready").exists():
            assert listener.poll() is None and time.time() < end
            time.sleep(0.05)
        if whose == "nobody listening behind our names":  # paths pass the checks; the listener's uid does not
            os.chown(address, 0, 0)
            os.chown(folder, 0, 0)
            os.chmod(folder, 0o700)
        client = subprocess.run([sys.executable, "-c", "import os, sys; from vitprobe import jobserver; "
                                 "r = jobserver.run_served(sys.argv[1], ['x']); sys.exit(99 if r is None else 0)",
                                 str(address)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "SECRET_TOKEN": "s3cret"})
        assert client.returncode == 99, client.stderr  # not served: the caller runs it itself
        if whose != "nobody listening behind our names":
            assert "not using the job server" in client.stderr
    finally:
        listener.terminate() if listener.poll() is None else None
        listener.wait(timeout=30)
    assert not record.exists() or record.read_bytes() == b""
    shutil.rmtree(folder)
    shutil.rmtree(records)


def test_the_server_will_not_listen_in_a_directory_others_can_enter():
    folder = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))
    os.chmod(folder, 0o755)
    try:
        with pytest.raises(jobserver.NotPrivate, match="mode 755: others may enter it"):
            jobserver.serve(str(folder / "s.sock"))
        assert not (folder / "s.sock").exists()
    finally:
        folder.rmdir()


def test_private_address_is_a_fresh_directory_of_mode_700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        address = jobserver.private_address()
    finally:
        os.umask(old)
    folder = Path(address).parent
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()
    assert len(address.encode()) < 107 and not Path(address).exists()
    folder.rmdir()
    sock = socket.socket(socket.AF_UNIX)  # the peer check reads the kernel's word for the other end
    a, b = socket.socketpair()
    assert jobserver.peer_uid(a) == os.geteuid()
    for s in (sock, a, b):
        s.close()
