"""The AlterNet build-up rule (paper Sect. 4, Fig. 12a) as a search over MSA layouts.

A layout is the number of MSA blocks per stage c1..cn of a pre-activation ResNet
(`vitprobe.models.alternet.PreActResNet`: a stage of n blocks with m MSA blocks is
[conv] * (n - 2m) + [conv, MSA] * m, so m <= n // 2, and one more MSA block replaces the
last conv block of the stage that is not already followed by an MSA block).

The rule, from the base layout and the stages to search (default: last to first):
  1. the base is trained and scored; it is the current best;
  2. the next candidate is the current best plus one MSA block in the current stage (a
     stage that is full is skipped: the search moves to the stage before it);
  3. the candidate is trained and scored; if its accuracy beats (strictly) the best, it is
     kept as the new best and the search stays in the stage (2.); otherwise the search moves
     to the stage before (2.);
  4. it stops when no stage is left or after `budget` candidates (the base not counted).

Scores are accuracies on a held-out, class-stratified split of the training set, which
the candidates do not train on (`vitprobe.models.recipe.holdout_split`); never the test set.

`walk` is the rule as a pure function of the accuracies recorded so far; the Snakemake
checkpoint `search_step` calls it through `vitprobe search-step` after every candidate.
This module imports nothing of vitprobe but the run id.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_LAYOUT_TAG = "_msa"


@dataclass(frozen=True)
class Step:
    layout: tuple[int, ...]
    stage: int                  # 1-based stage the step added an MSA block to; 0 = the base
    accuracy: float
    best_before: float | None   # None for the base
    kept: bool


@dataclass(frozen=True)
class Walk:
    steps: list[Step]
    next_layout: tuple[int, ...] | None   # the next candidate, None when the search is over
    next_stage: int
    reason: str                            # why it stopped ('' while it goes on)


def max_msa(blocks: int) -> int:
    """MSA blocks a stage of `blocks` blocks can hold (they alternate with conv blocks)."""
    return blocks // 2


def walk(layers, start, stages, budget: int, accuracies) -> Walk:
    """Replay the rule on the accuracies of the candidates tried so far (accuracies[0]: the
    base `start`; accuracies[i]: the i-th candidate the rule proposed) and return every step
    with its decision and the next candidate. `layers`: blocks per stage; `stages`: 1-based
    stages in search order; `budget`: most candidates after the base."""
    layers, best = tuple(layers), tuple(start)
    stages = list(stages)
    steps: list[Step] = []
    best_acc: float | None = None
    pos = 0  # index into stages of the stage being searched

    def proposal():
        nonlocal pos
        if len(steps) - 1 >= budget:
            return None, 0, f"budget of {budget} candidates spent"
        while pos < len(stages) and best[stages[pos] - 1] + 1 > max_msa(layers[stages[pos] - 1]):
            pos += 1
        if pos >= len(stages):
            return None, 0, f"no stage left (searched {', '.join(f'c{s}' for s in stages)})"
        s = stages[pos]
        return tuple(m + (i == s - 1) for i, m in enumerate(best)), s, ""

    layout, stage, reason = best, 0, ""
    for acc in accuracies:
        if layout is None:
            raise ValueError(f"{len(accuracies)} accuracies for a search that stopped after {len(steps)} steps")
        kept = stage == 0 or acc > best_acc
        steps.append(Step(layout, stage, float(acc), best_acc, kept))
        if kept:
            best, best_acc = layout, float(acc)
        else:
            pos += 1  # not better: the stage before
        layout, stage, reason = proposal()
    return Walk(steps, layout, stage, reason)


def layout_token(layout) -> str:
    return "_".join(str(int(m)) for m in layout)


def candidate_model(base: str, layout) -> str:
    """The model name of a candidate: the base's name and its layout, e.g.
    'preact_resnet50_cifar_msa0_1_1_1' (run ids hold it like any model name)."""
    return f"{base}{_LAYOUT_TAG}{layout_token(layout)}"


def parse_candidate(base: str, model: str) -> tuple[int, ...] | None:
    """The layout of a candidate model name of `base`, or None if it is not one."""
    m = re.fullmatch(re.escape(base + _LAYOUT_TAG) + r"(\d+(?:_\d+)*)", model)
    return tuple(int(v) for v in m[1].split("_")) if m else None


def state(walk_: Walk, run_ids: list[str], next_run: str | None) -> dict:
    """A step job's JSON output: every step so far with its run id, and the next candidate."""
    steps = [{**asdict(s), "layout": list(s.layout), "run": r} for s, r in zip(walk_.steps, run_ids)]
    nxt = None if walk_.next_layout is None else {"layout": list(walk_.next_layout), "stage": walk_.next_stage,
                                                  "run": next_run}
    return {"steps": steps, "next": nxt, "stopped": walk_.reason}
