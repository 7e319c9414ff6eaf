"""A probe job's log: stderr lines prefixed ``[<run id> e<epoch>] <probe>: `` and tqdm bars
that suit a log file (a Snakemake job's log)."""

from __future__ import annotations

import functools
import sys

from tqdm import tqdm


def progress(iterable, total: int | None = None, desc: str | None = None):
    """Yield the items of `iterable` under a tqdm bar on stderr (`total` defaults to its len),
    an item counted once its work is done. Off a terminal (a log file) it redraws at most
    every 30 s, so a log holds the first (0/n) and last (n/n) line and a few between, as in
    training; a line logged meanwhile (`tqdm.write`) redraws it with the current count."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0) as bar:
        for item in iterable:
            yield item
            bar.update()


class Log:
    """One probe job's stderr lines, prefixed `[<run id> e<epoch>] <probe>: `, and its bars."""

    def __init__(self, probe: str, run_id: str, epoch: int):
        self.prefix = f"[{run_id} e{epoch}] {probe}: "

    def __call__(self, message: str) -> None:
        tqdm.write(self.prefix + message, file=sys.stderr)  # clears an open bar, redraws it below

    def bar(self, what: str, total: int | None = None):
        """A `progress` for the iterable of `what` (a callable wrapping an iterable, as the
        `progress` parameter of the probes' functions wants)."""
        return functools.partial(progress, total=total, desc=self.prefix + what)
