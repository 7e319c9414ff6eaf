"""The `vitprobe` executable. Where the workflow runs a job server for its local jobs
(`VITPROBE_JOB_SERVER`, `vitprobe.jobserver`), a command runs there, in a fork of a process
with everything imported; elsewhere (no server, a server that cannot take it, inside a Slurm
job) in this process, as `vitprobe.cli.main`. Both give the same output, files and exit status.

With `VITPROBE_CPU_LOG` set (the workflow sets it for its jobs), the command ends with one line
on stderr: its CPU seconds spent starting up (the interpreter and the imports; for a served
command, this client's and the fork's) and in its own work, which
`benchmarks/bench_startup.py` sums over a run's job logs.

Standard library only until it knows where the command runs.
"""

from __future__ import annotations

import os
import sys
import time

from vitprobe import jobserver

CPU_ENV = "VITPROBE_CPU_LOG"
#: How the CPU line starts: `<PREFIX> <verb>: ...` (benchmarks/bench_startup.py reads it).
CPU_PREFIX = "vitprobe cpu"


def main() -> int:
    argv = sys.argv[1:]
    verb = _verb(argv)
    address = os.environ.get(jobserver.ENV)
    served = None
    # A Slurm job's work stays in the job's own allocation; a server is not started by another.
    if address and "SLURM_JOB_ID" not in os.environ and verb != "serve":
        served = jobserver.run_served(address, argv)
    if served is not None:
        code, startup, work, how = served.code, time.process_time() + served.startup_cpu, served.work_cpu, "job server"
    else:
        from vitprobe import cli  # in this process: everything is imported here
        cli.preload(verb)
        startup = time.process_time()
        code = cli.main(argv)
        work, how = time.process_time() - startup, "own process"
    if os.environ.get(CPU_ENV):
        print(cpu_line(verb, startup, work, how), file=sys.stderr, flush=True)
    return code


def cpu_line(verb: str, startup: float, work: float, how: str) -> str:
    return f"{CPU_PREFIX} {verb}: {startup:.3f} s start-up and imports, {work:.3f} s work ({how})"


def _verb(argv: list[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "-")


if __name__ == "__main__":
    sys.exit(main())
