"""CPU seconds a workflow run's jobs spend starting up (the interpreter and the imports)
against the seconds of their own work, served by the job server and, measured in the same
run, in a process of their own each.

Every `vitprobe` job's log ends with a line of its CPU seconds (vitprobe.launch: start-up
and imports, work, and whether the job server ran it). This script sums those lines over a
run's job logs, per verb, and measures what start-up costs a verb in its own process: a fresh
interpreter that imports what that verb imports (`vitprobe.cli` and `cli.preload`), median of
3. The baseline is then that cost times the verb's jobs, beside the same work. Printed: the
table per verb, the start-up share of the jobs' CPU for both, and their ratio.

Run after a finished run (`make demo`):
    .venv/bin/python benchmarks/bench_startup.py --logs results/demo/logs
or let it run the demo first, from scratch, in a folder of its own (about 10 minutes on 2 cores):
    .venv/bin/python benchmarks/bench_startup.py --run [--no-job-server]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^vitprobe cpu (?P<verb>\S+): (?P<startup>[\d.]+) s start-up and imports, "
                  r"(?P<work>[\d.]+) s work \((?P<how>[^)]+)\)$", re.M)
SERVER = re.compile(r"stopped after (?P<n>\d+) commands, (?P<cpu>[\d.]+) s CPU of its own")
PROBE = ("import sys, time; from vitprobe import cli; cli.preload(sys.argv[1]); "
         "print(time.process_time())")


def job_lines(logs: Path) -> list[dict]:
    rows = []
    for path in sorted(logs.rglob("*.log")):
        text = path.read_text(errors="replace")
        for m in LINE.finditer(text):
            if m["verb"] == "serve":  # the job server's own line: counted from its log (SERVER)
                continue
            rows.append({"log": str(path.relative_to(logs)), "verb": m["verb"], "startup": float(m["startup"]),
                         "work": float(m["work"]), "how": m["how"]})
    return rows


def own_process_startup(verb: str, repeats: int = 3) -> float:
    """CPU seconds of a fresh interpreter importing what `vitprobe <verb>` imports."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", PROBE, verb], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def run_demo(folder: Path, job_server: bool) -> float:
    """The demo from scratch into `folder`; its wall seconds."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "--config",
           f"results_dir={folder}/results", f"figures_dir={folder}/figures", f"job_server={str(job_server).lower()}"]
    start = time.time()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=(folder / "snakemake.log").open("w"))
    return time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", type=Path, help="a finished run's job logs, e.g. results/demo/logs")
    ap.add_argument("--run", action="store_true", help="run the demo from scratch first, in a temporary folder")
    ap.add_argument("--no-job-server", action="store_true", help="with --run: every job in a process of its own")
    args = ap.parse_args()
    if args.run == bool(args.logs):
        ap.error("give --logs DIR or --run")
    wall = None
    if args.run:
        folder = Path(tempfile.mkdtemp(prefix="bench_startup_"))
        wall = run_demo(folder, not args.no_job_server)
        args.logs = folder / "results" / "logs"
    rows = job_lines(args.logs)
    if not rows:
        sys.exit(f"no `vitprobe cpu` lines in {args.logs}: a run of this version writes one per job log")
    by_verb = defaultdict(list)
    for r in rows:
        by_verb[r["verb"]].append(r)
    server_log = args.logs / "job_server.log"
    server = SERVER.search(server_log.read_text()) if server_log.exists() else None
    server_cpu = float(server["cpu"]) if server else 0.0

    print(f"{'verb':<14} {'jobs':>4} {'served':>6} {'start-up s':>10} {'own process s':>13} {'work s':>8}")
    total = defaultdict(float)
    for verb, jobs in sorted(by_verb.items()):
        own = own_process_startup(verb)
        startup, work = sum(j["startup"] for j in jobs), sum(j["work"] for j in jobs)
        served = sum(j["how"] == "job server" for j in jobs)
        total["startup"] += startup
        total["own"] += own * len(jobs)
        total["work"] += work
        total["jobs"] += len(jobs)
        total["served"] += served
        print(f"{verb:<14} {len(jobs):>4} {served:>6} {startup:>10.1f} {own * len(jobs):>13.1f} {work:>8.1f}")
    startup = total["startup"] + server_cpu  # the server's own CPU (its imports) is start-up too
    share = startup / (startup + total["work"])
    own_share = total["own"] / (total["own"] + total["work"])
    print(f"{'all':<14} {int(total['jobs']):>4} {int(total['served']):>6} {startup:>10.1f} {total['own']:>13.1f} "
          f"{total['work']:>8.1f}")
    print(f"\nthis run: start-up and imports {startup:.1f} s CPU (job server's own {server_cpu:.1f} s included) "
          f"= {share:.1%} of the jobs' {startup + total['work']:.1f} s")
    print(f"each job in its own process (measured now): {total['own']:.1f} s = {own_share:.1%} of "
          f"{total['own'] + total['work']:.1f} s")
    print(f"ratio own-process / this run's start-up CPU: {total['own'] / max(startup, 1e-9):.1f}x")
    if wall is not None:
        print(f"the demo took {wall / 60:.1f} min wall ({args.logs})")


if __name__ == "__main__":
    main()
