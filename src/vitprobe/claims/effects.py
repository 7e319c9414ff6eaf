"""The bootstrap of an effect: its interval from the quantities it is made of, resampling
their units jointly where they share them (a paired comparison).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vitprobe import stats
from vitprobe.claims.measures import Quantity


def _replicates(quantities: list[Quantity], ci: stats.Intervals, salt: str, start: int, count: int):
    """Per quantity, `count` bootstrap replicates (and the point estimate when count is 0)."""
    spaces: dict[str, np.ndarray] = {}
    for q in quantities:
        for m in q.measures:
            spaces[m.space] = np.union1d(spaces.get(m.space, np.empty(0)), m.ids)
    rng = ci.rng(salt, start)
    w = {s: stats.weights(len(ids), count, rng) if count else np.ones((1, len(ids))) for s, ids in spaces.items()}
    seeds_resampled = all(len(q.measures) >= stats.MIN_UNITS for q in quantities)
    out = []
    for q in quantities:
        per = []
        for m in q.measures:
            cols = np.searchsorted(spaces[m.space], m.ids)
            ws = w[m.space][:, cols]
            if m.statistic is not None:
                per.append(m.statistic(ws))
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                per.append((ws @ m.num) / (ws @ m.den))
        per = np.stack(per, axis=1)  # (replicates, seeds)
        if count and seeds_resampled:
            sw = stats.weights(per.shape[1], count, rng)
            out.append((sw * per).sum(axis=1) / sw.sum(axis=1))
        else:
            out.append(per.mean(axis=1))
    n_units = min(len(ids) for ids in spaces.values())
    n = min(n_units, min(len(q.measures) for q in quantities)) if seeds_resampled else n_units
    return out, n, seeds_resampled, spaces


def effect_interval(quantities: list[Quantity], combine: Callable, ci: stats.Intervals, salt: str):
    """(effect, low, high, per-quantity (value, low, high), how): the effect `combine(*values)`
    and its expanded percentile interval, with each quantity's own."""
    points, _, _, spaces = _replicates(quantities, ci, salt, 0, 0)
    reps, chunks, n, resampled = [[] for _ in quantities], [], 0, False
    block = 500
    for start in range(0, ci.resamples, block):
        r, n, resampled, _ = _replicates(quantities, ci, salt, start, min(block, ci.resamples - start))
        for i, x in enumerate(r):
            reps[i].append(x)
        chunks.append(combine(*r))
    reps = [np.concatenate(x) for x in reps]
    effect = float(combine(*[p[:1] for p in points])[0])
    low, high = stats.percentile(np.concatenate(chunks), n, ci.level)
    parts = [(float(p[0]), *stats.percentile(r, n, ci.level)) for p, r in zip(points, reps)]
    seeds = sorted({len(q.measures) for q in quantities})
    units = _units_text(spaces)
    how = (f"expanded percentile bootstrap over {units}" +
           (f" and over seeds ({'/'.join(map(str, seeds))} per run)" if resampled else
            f"; {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''} per run" +
            (" (fixed: fewer than 5)" if seeds != [1] else "")))
    return effect, low, high, parts, how


def _units_text(spaces: dict[str, np.ndarray]) -> str:
    """'1000 test images (paired)', '3 mini-batches per run': what the bootstrap resampled.
    A space is '<kind>' (shared by every run measured on those units) or '<kind>|<run>'."""
    kinds: dict[str, list[int]] = {}
    for space, ids in spaces.items():
        kinds.setdefault(space.split("|")[0], []).append(len(ids))
    parts = []
    for kind, sizes in kinds.items():
        shared = not any("|" in s for s in spaces if s.split("|")[0] == kind)
        n = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}–{max(sizes)}"
        parts.append(f"{n} {kind}" + (" (the same in every run: paired)" if shared else " per run"))
    return "; ".join(parts)
