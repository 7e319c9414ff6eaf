"""Scoring the catalogue on a plan's runs: the config check before any job, the scorecard
job's spec, and the claim rows with effects, intervals and verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe import stats
from vitprobe.claims.catalogue import CLAIMS
from vitprobe.claims.effects import effect_interval
from vitprobe.claims.measures import Missing
from vitprobe.claims.roles import ROLES, candidates, resolve_roles
from vitprobe.errors import ConfigError


def check(plan) -> None:
    """Before any job: `claims.only` names known claims, `claims.roles` known roles, each a
    model of the experiments that fits the role; one line each, naming what is allowed."""
    block = plan.config.get("claims", {})
    unknown = [c for c in block.get("only", []) if c not in CLAIMS]
    if unknown:
        raise ConfigError(f"claims.only: unknown claim {unknown[0]!r}; allowed: {', '.join(CLAIMS)}")
    dataset = plan.config["data"]["dataset"]
    configured = list(dict.fromkeys(r.model for exp in plan.experiments.values() for r in exp if r.dataset == dataset))
    for role, model in block.get("roles", {}).items():
        if role not in ROLES:
            raise ConfigError(f"claims.roles: unknown role {role!r}; allowed: {', '.join(ROLES)}")
        if model not in configured:
            raise ConfigError(f"claims.roles.{role}: {model!r} is not a model of the experiments on {dataset}; "
                              f"allowed: {', '.join(configured)}")
        fits = [m for m, _ in candidates(plan, role)]
        if model not in fits:
            arch = plan.model_spec(model)["arch"]
            raise ConfigError(f"claims.roles.{role}: {model!r} ({arch}) is not {ROLES[role]}; models that are: "
                              f"{', '.join(fits) or 'none'}")


def scorecard_spec(plan) -> dict:
    """What the scorecard job reads besides the tables: roles, epochs, intervals, models."""
    config = plan.config
    return {"roles": resolve_roles(plan), "only": config.get("claims", {}).get("only") or list(CLAIMS),
            "warmup_epoch": config["train"]["warmup_epochs"], "epochs": config["train"]["epochs"],
            "dataset": config["data"]["dataset"], "intervals": config.get("intervals", {}),
            "models": {m: plan.model_spec(m) for m in dict.fromkeys(r.model for r in plan.runs)}}


COLUMN_DOCS = {
    "claim": "the claim's id (a key of vitprobe.claims.CLAIMS)",
    "says": "what the paper says",
    "figure": "where the paper shows it",
    "effect": "what the effect is; positive = the paper's direction",
    "unit": "the effect's unit (pp: percentage points)",
    "value": "the effect (NaN: n/a)",
    "low": "lower end of its interval (NaN: too few units for one, or n/a)",
    "high": "upper end of its interval",
    "verdict": "shows (low > 0), leans (value > 0, interval holds 0), leans against (value <= 0, interval holds 0), "
               "contradicts (high < 0), n/a (missing says what is needed)",
    "numbers": "each quantity the effect is made of, with its own interval",
    "runs": "role: model of the runs it was scored on",
    "method": "how the interval was computed: the units resampled and how seeds were treated",
    "missing": "for n/a: the run, probe, epoch or table it needs",
    "level": "the intervals' level (intervals.level)",
}
COLUMNS = list(COLUMN_DOCS)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _with_interval(label: str, v: float, lo: float, hi: float) -> str:
    if np.isnan(v):
        return f"{label} –"
    return f"{label} {_fmt(v)}" + ("" if np.isnan(lo) else f" [{_fmt(lo)}, {_fmt(hi)}]")


def score(tables: dict[str, pd.DataFrame], spec: dict, ci: stats.Intervals) -> pd.DataFrame:
    """The scorecard's claim rows (COLUMNS): for every claim of `spec["only"]`, its effect,
    interval (at `ci`) and verdict on the runs of `spec["roles"]` (`scorecard_spec`), from
    `tables` (aggregated result tables by name; those a claim needs and lacks make it n/a)."""
    roles = spec["roles"]
    rows = []
    for name in spec["only"]:
        claim = CLAIMS[name]
        row = {"claim": name, "says": claim.says, "figure": claim.figure, "effect": claim.effect, "unit": claim.unit,
               "value": np.nan, "low": np.nan, "high": np.nan, "numbers": "", "method": "", "missing": "",
               "runs": ", ".join(f"{r}: {roles[r]['model']}" for r in claim.roles if r in roles), "level": ci.level}
        try:
            quantities, combine = claim.measure(tables, roles, spec)
            value, low, high, parts, how = effect_interval(quantities, combine, ci, name)
            if np.isnan(low):
                how += f" (no interval below {stats.MIN_UNITS} units)"
            row.update(value=value, low=low, high=high, method=how, numbers=", ".join(
                _with_interval(q.label, v, lo, hi) for q, (v, lo, hi) in zip(quantities, parts)))
        except Missing as why:
            row["missing"] = str(why)
        row["verdict"] = stats.verdict(row["value"], row["low"], row["high"])
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
