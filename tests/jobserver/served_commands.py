"""Commands for the job server's tests (`run` of vitprobe.jobserver.serve): each shows one
thing a served command must have as its own process would."""

import os
import random
import signal
import sys
import time
from pathlib import Path


def run(argv: list[str]) -> int:
    what, *rest = argv
    if what == "echo":  # arguments and cwd to stdout, an environment variable to stderr
        print(" ".join(rest), os.getcwd())
        print(os.environ.get("SERVED_TEST", "<unset>"), file=sys.stderr)
        return 0
    if what == "exit":
        return int(rest[0])
    if what == "usage":  # argparse's way out
        sys.exit(2)
    if what == "crash":
        raise RuntimeError("served crash")
    if what == "random":  # a fresh process draws from an OS-seeded generator
        import numpy as np
        print(random.random(), np.random.random())
        return 0
    if what == "umask":
        mask = os.umask(0)
        print(oct(mask))
        return 0
    if what == "trap":  # SIGTERM handled (training saves its state): write a file, exit 3
        signal.signal(signal.SIGTERM, lambda s, f: (Path(rest[0]).write_text("term"), os._exit(3)))
        Path(rest[1]).write_text(str(os.getpid()))
        time.sleep(60)
        return 0
    if what == "touch":  # a file written: what another user must never get done
        Path(rest[0]).write_text("ran")
        return 0
    if what == "atexit":  # the interpreter's own exit: atexit handlers run, a non-daemon thread is waited for
        import atexit
        import threading
        atexit.register(lambda: print("atexit ran", flush=True))
        threading.Thread(target=lambda: (time.sleep(0.5), print("thread ended", flush=True))).start()
        return 4
    if what == "sleep":  # default SIGTERM: the process dies of it; writes its pid first
        Path(rest[0]).write_text(str(os.getpid()))
        time.sleep(60)
        return 0
    raise ValueError(what)
