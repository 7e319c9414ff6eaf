"""A warm process that runs `vitprobe` commands for a local Snakemake run, so that each job
does not pay for starting Python and importing torch, timm, pandas and matplotlib again.

Measured on the project's 2-core machines, `import torch, timm, vitprobe.models` takes 5-10 s
of CPU, paid by each of the demo's jobs: about a third of its CPU time
(`benchmarks/bench_startup.py`). The server imports all of it once; each command is a `fork()`
of it, which starts in milliseconds with everything loaded.

Protocol, over a Unix socket: the client (`vitprobe.launch`, the `vitprobe` executable) sends
its stdin, stdout and stderr as file descriptors and a JSON header (argv, cwd, environment,
umask); the server forks; the child takes over the descriptors, directory and environment,
answers `{"pid": ..., "startup_cpu": s}` and runs the command; when it has ended, the server
answers `{"exit": code}` or `{"signal": n}` with its CPU seconds. The
client forwards the signals it gets (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) to the child,
and the child stops itself (SIGTERM) when the client is gone, so that killing a job kills its
work as it would kill a process of its own.

What the child inherits from the server and not from the job is what was read at import
time. Of that, the interpreter, the import path and the thread-count variables (`IMPORT_ENV`)
can matter for results; where a job's differ from the server's, the child answers
`{"fallback": reason}` and the client runs the command itself. Everything else (directory,
environment, umask, descriptors, signal handlers, the seeds of `random` and numpy's global
generator) is set as a fresh process would have it.

Who may use it: only the user who started it. The socket lives in a directory of mode 0700
made for it (`private_address`: a fresh `mkdtemp` in `$XDG_RUNTIME_DIR`, or in the temporary
directory), so no other user can reach it whatever the umask; the server checks every
connection's peer (`SO_PEERCRED`) and closes one from another user before reading a byte; the
client checks that the socket and its directory are its user's, and that the process listening
is too, before it sends its descriptors and environment. Linux only (`SUPPORTED`): elsewhere
there is no peer check, and forking a process that imported torch and matplotlib is not safe on
macOS, so every command runs in its own process.

Imports: the standard library only (layer 0). In each forked child `serve` returns the
client's `Job` to its caller, which runs the command (`vitprobe.cli` runs `cli.main`) and ends
the process through the interpreter's own exit; so this module imports nothing of vitprobe.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Environment variable naming the server's socket; set by the workflow for its local jobs.
ENV = "VITPROBE_JOB_SERVER"
#: The thread counts the numerical libraries read at import; Snakemake sets each to a job's `threads`.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Variables read once, at start-up or import: a job whose values differ from the server's runs
#: on its own.
IMPORT_ENV = (*THREAD_ENV, "PYTHONHASHSEED", "PYTHONPATH")
#: Signals a client passes on to its command.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: Where a server can be used: a Unix socket whose peer's user the kernel tells (Linux).
SUPPORTED = sys.platform.startswith("linux") and hasattr(socket, "SO_PEERCRED")


class NotPrivate(Exception):
    """A socket, its directory or the process behind it that is not this user's alone."""


def private_address() -> str:
    """A socket path in a fresh directory of mode 0700 (whatever the umask), in
    `$XDG_RUNTIME_DIR` where that is this user's private directory, else in the temporary
    directory; short, as a socket path has at most 107 bytes."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    where = runtime if runtime and _private_dir(runtime) is None else None
    return os.path.join(tempfile.mkdtemp(prefix="vitprobe-", dir=where), "jobs.sock")


def _private_dir(path: str) -> str | None:
    """Why directory `path` is not this user's alone (None: it is)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if st.st_mode & 0o077:
        return f"{path} has mode {stat.S_IMODE(st.st_mode):o}: others may enter it (expected 700)"
    return None


def check_private(address: str) -> None:
    """Raise NotPrivate unless `address` is a socket of this user's in a directory only this
    user can enter (so that no one else can have put it there, or replace it)."""
    why = _private_dir(os.path.dirname(os.path.abspath(address)))
    if why is None:
        try:
            st = os.lstat(address)
        except OSError as exc:
            raise NotPrivate(f"{address}: {exc.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            why = f"{address} is not a socket"
        elif st.st_uid != os.geteuid():
            why = f"{address} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if why is not None:
        raise NotPrivate(why)


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end of a connected Unix socket (SO_PEERCRED:
    the kernel's word, fixed when it connected or listened)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


class _Lines:
    """Newline-separated JSON messages from a socket."""

    def __init__(self, conn: socket.socket, first: bytes = b""):
        self.conn, self.buffer = conn, first

    def next(self) -> dict | None:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


# ---- client ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Served:
    """A served command's exit status and the CPU seconds of its fork: before the command
    started (`startup_cpu`) and in it (`work_cpu`, with its child processes')."""

    code: int
    startup_cpu: float = 0.0
    work_cpu: float = 0.0


def run_served(address: str, argv: list[str]) -> Served | None:
    """Run `vitprobe argv` in the server at `address` with this process's stdin, stdout,
    stderr, directory and environment; None where it was not run (not Linux, no server there,
    a socket that is not this user's alone, or the server asked this process to run it
    itself). Nothing is sent before the socket, its directory and its listener are checked."""
    if not SUPPORTED:
        return None
    try:
        check_private(address)
    except NotPrivate as exc:
        if os.path.lexists(address):  # a server not ours, or not private: say so once, run here
            print(f"vitprobe: not using the job server ({exc}); running this command in its own process",
                  file=sys.stderr)
        return None
    worker, caught = [], []  # the command's pid once known; signals caught, in order

    def forward(signum, frame):
        caught.append(signum)
        if worker:
            _kill(worker[0], signum)

    # Before connecting: a signal that comes while the command starts is passed on, not lost.
    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        message = _exchange(address, argv, worker, caught)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if message is None or "fallback" in message:
        for signum in caught:  # caught before anything ran: deliver them to this process after all
            os.kill(os.getpid(), signum)
        return None
    if message.get("eof"):  # the server stopped before the command ended
        print(f"vitprobe: the job server stopped while it ran this command (worker {worker[0]})", file=sys.stderr)
        return Served(1)
    if "signal" in message:  # the command died of a signal: so does its client, as its own process would
        sys.stdout.flush()
        signal.signal(message["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), message["signal"])
    return Served(int(message.get("exit", 1)), worker[1], message["cpu"] - worker[1])


def _exchange(address: str, argv: list[str], worker: list, caught: list) -> dict | None:
    """Send the command; the server's last message (None: not served; {"eof": True}: the
    worker ended without one)."""
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
    except OSError:
        return None
    with conn:
        if peer_uid(conn) != os.geteuid():  # the listener is someone else's: send nothing
            return None
        header = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
                             "python": _python()}).encode() + b"\n"
        try:  # the descriptors with one byte, then the header whole (a sendmsg may send part of a long one)
            socket.send_fds(conn, [b"\0"], [0, 1, 2])
            conn.sendall(header)
        except OSError:
            return None
        lines = _Lines(conn)
        first = lines.next()
        if first is None or "fallback" in first:
            return first
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # each caught signal forwarded exactly once
        worker += [first["pid"], first["startup_cpu"]]
        for signum in caught:  # caught while it started
            _kill(worker[0], signum)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        message = lines.next()
    return {"eof": True} if message is None else message


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _python() -> str:
    """The interpreter and environment (venv) a process runs in."""
    return f"{os.path.realpath(sys.executable)} {sys.prefix}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- server ---------------------------------------------------------------------------------
def serve(address: str, preload: Iterable[str] = (), parent: int | None = None, log=sys.stderr) -> _Job | None:
    """Import `preload`, then answer clients at `address` until SIGTERM or until process
    `parent` is gone, forking a child per client. The socket appears, by a rename, only once
    everything is imported. In the server, returns None when it stops; in each forked child,
    returns that client's `Job` at once: the caller runs it and ends the process as it ends
    any (`sys.exit(job.run(main))`), so that the interpreter's own exit (atexit handlers,
    waiting for threads, flushing) is a fresh process's. A child's exit status is the server's
    to report (from `waitpid`), so that a command ending by `os._exit` or by a signal reports as
    its own process would."""
    if not SUPPORTED:
        raise NotPrivate(f"the job server needs Linux (SO_PEERCRED); this is {sys.platform}")
    folder = os.path.dirname(os.path.abspath(address))
    why = _private_dir(folder)
    if why is not None:
        raise NotPrivate(f"the job server's socket must be in a directory only this user can enter ({why}); "
                         f"see jobserver.private_address")
    preload = tuple(preload)
    for name in preload:
        importlib.import_module(name)
    fingerprint = {"python": _python(), **{k: os.environ.get(k) for k in IMPORT_ENV}}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = f"{address}.{os.getpid()}.tmp"
    if os.path.exists(staging):
        os.unlink(staging)
    listener.bind(staging)
    os.chmod(staging, 0o600)  # the directory already keeps others out; this whatever the directory
    listener.listen(64)
    os.replace(staging, address)
    print(f"job server {os.getpid()}: ready at {address}, {time.process_time():.1f} s CPU since it started "
          f"(the interpreter and {len(preload)} modules)", file=log, flush=True)
    server = os.getpid()
    stopping = []
    wake_r, wake_w = socket.socketpair()  # SIGCHLD and SIGTERM wake the select() below
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    previous = {s: signal.signal(s, h) for s, h in ((signal.SIGCHLD, lambda signum, frame: None),
                                                   (signal.SIGTERM, lambda signum, frame: stopping.append(signum)))}
    clients: dict[int, socket.socket] = {}  # child pid -> its client's connection
    served = refused = 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake_r, selectors.EVENT_READ)
            while not stopping and (parent is None or _alive(parent)):
                ready = {key.fileobj for key, _ in selector.select(timeout=1.0)}
                if wake_r in ready:
                    _drain(wake_r)
                _reap(clients)
                if listener not in ready:
                    continue
                conn, _ = listener.accept()
                uid = peer_uid(conn)
                if uid != os.geteuid():  # not a byte read from another user's connection
                    conn.close()
                    refused += 1
                    print(f"job server {server}: refused a connection from uid {uid}", file=log, flush=True)
                    continue
                served += 1
                sys.stdout.flush()
                log.flush()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    for sock in (listener, wake_r, wake_w, *clients.values()):
                        sock.close()
                    return _Job.start(conn, fingerprint)
                clients[pid] = conn
    finally:
        if os.getpid() == server:
            signal.set_wakeup_fd(-1)
            for s, handler in previous.items():
                signal.signal(s, handler)
            listener.close()
            for path in (address, folder):
                try:
                    os.rmdir(path) if path == folder else os.unlink(path)
                except OSError:  # gone already, or (the folder) holding files that are not ours to remove
                    pass
            print(f"job server {server}: stopped after {served} commands ({refused} connections refused), "
                  f"{time.process_time():.1f} s CPU of its own", file=log, flush=True)
    return None


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover (someone else's process reusing the pid)
        return True
    return True


def _reap(clients: dict[int, socket.socket]) -> None:
    """Collect ended children; tell each one's client how it ended and its CPU seconds."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = clients.pop(pid, None)
        if conn is None:
            continue
        ended = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                 else {"exit": os.waitstatus_to_exitcode(status)})
        try:
            _send(conn, {**ended, "cpu": usage.ru_utime + usage.ru_stime})
        except OSError:  # the client is gone
            pass
        conn.close()


@dataclass
class _Job:
    """A forked child that has become its client's process: descriptors, directory,
    environment, umask, argv and fresh random seeds are the client's."""

    argv: list[str]

    @classmethod
    def start(cls, conn: socket.socket, fingerprint: dict) -> _Job:
        """Take over the client's process state; a child that cannot (a client that sent too
        little, or other start-up settings) ends here, never back in the server's loop."""
        try:
            for s in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(s, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.setsid()  # not in the server's process group: a signal to the server does not reach it
            conn.settimeout(None)
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            request = _Lines(conn).next()
            if request is None or len(fds) != 3:
                os._exit(1)
            theirs = {"python": request.get("python"), **{k: request["env"].get(k) for k in IMPORT_ENV}}
            if theirs != fingerprint:
                changed = ", ".join(k for k in fingerprint if theirs[k] != fingerprint[k])
                _send(conn, {"fallback": f"start-up settings differ from the server's: {changed}"})
                os._exit(0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            os.umask(request["umask"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.argv = ["vitprobe", *request["argv"]]
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # line-buffered, as Python's own stderr
            _reseed()
            _send(conn, {"pid": os.getpid(), "startup_cpu": time.process_time()})
            threading.Thread(target=_stop_when_gone, args=(conn,), daemon=True).start()
            return cls(list(request["argv"]))
        except BaseException:  # noqa: BLE001 (never back into the server's loop)
            try:
                import traceback  # only on a crash
                traceback.print_exc()
            finally:
                os._exit(1)

    def run(self, command: Callable[[list[str]], int]) -> int:
        """`command(argv)`'s exit status, as a fresh process running it would exit with."""
        try:
            return command(self.argv)
        except SystemExit as exc:  # argparse's --help and usage errors
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            return 130
        except BaseException:  # noqa: BLE001 (the traceback a fresh process would print)
            import traceback  # only on a crash
            traceback.print_exc()
            return 1


def _reseed() -> None:
    """A fresh process seeds `random` and numpy's global generator from the OS; forked
    children would all share the server's state."""
    import random  # only a fork needs it
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _stop_when_gone(conn: socket.socket) -> None:
    """The client holds the other end for as long as it waits; when it closes (the client was
    killed), stop this command as a signal to the client's own process would."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
