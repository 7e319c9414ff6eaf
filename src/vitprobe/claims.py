"""The catalogue of the paper's claims, next to the catalogue of probes and figures
(`vitprobe.catalog`): each claim is what the paper says, where (figure), and a function from
the result tables to an effect size with its interval, scored into a verdict
(`vitprobe.stats.verdict`): shows, leans, leans against, contradicts, or n/a (a run, probe
or epoch it needs is not in the config; the row says which).

Runs are chosen by *role*, from the configured models' architectures (`roles`), never by
name: cnn (a ResNet), vit (a ViT with a class token), gap (a ViT with a global-average-pooling
head, else a local-attention ViT at a window that covers its token grid), lmsa (a
local-attention ViT at two or more kernel sizes), preact (a pre-activation ResNet), alternet
(an AlterNet). Where several models fit a role the first configured one plays it, unless the
config's `claims.roles` names one; the scorecard says which were candidates.

Effects are signed so that a positive effect is the paper's direction. A claim with two
parts ("MSAs lower it, MLPs raise it") has the smaller of the two parts as its effect, so it
shows only when both do. Intervals: the expanded percentile bootstrap (`vitprobe.stats`) of
the effect, resampling the units the numbers are means over (test images; Hessian
mini-batches). Runs measured on the same images (the same test set, or the same seeded
sample of it) share their resamples: a difference between two models is a paired
comparison. With several seeds a run's number is the mean over its seeds; seeds are
resampled too when every run involved has at least `stats.MIN_UNITS` of them, and are fixed
otherwise (the interval is then over images or mini-batches given the trained networks, and
the row says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from vitprobe import stats
from vitprobe.errors import ConfigError

# ---- roles ----------------------------------------------------------------------------
ROLES = {
    "cnn": "a CNN: a ResNet (model family resnet)",
    "vit": "a ViT with a class token (family vit)",
    "gap": "a ViT with a global-average-pooling head (family vit, global_pool avg), or a local-attention ViT at a "
           "window that covers its token grid",
    "lmsa": "a local-attention ViT (family local_vit) at two or more kernel sizes",
    "preact": "a pre-activation ResNet (family preact_resnet), AlterNet's base",
    "alternet": "an AlterNet (family alternet)",
}
_TIMM_FAMILIES = (("resnet", "resnet"), ("resnext", "resnet"), ("vit_", "vit"), ("deit", "vit"))


def _family(plan, model: str) -> str:
    info = plan.model_info(model)
    if info.family != "timm":
        return info.family
    arch = plan.model_spec(model)["arch"]
    return next((fam for prefix, fam in _TIMM_FAMILIES if arch.startswith(prefix)), "timm")


def _pooled(plan, model: str) -> bool:
    """A ViT whose head reads the average of the tokens (no class token)."""
    spec = plan.model_spec(model)
    kwargs = spec["kwargs"]
    if "global_pool" in kwargs:
        return kwargs["global_pool"] == "avg"
    return "gap" in spec["arch"] or kwargs.get("class_token") is False


def _candidates(plan, role: str) -> list[tuple[str, list[int]]]:
    """(model, kernel sizes) of the configured runs (data.dataset) that fit `role`, in config order."""
    dataset = plan.config["data"]["dataset"]
    runs = [r for exp in plan.experiments.values() for r in exp if r.dataset == dataset]
    models = list(dict.fromkeys(r.model for r in runs))
    kernels = {m: sorted({r.kernel_size for r in runs if r.model == m}) for m in models}
    out = []
    for m in models:
        fam = _family(plan, m)
        if role == "cnn" and fam == "resnet" or role == "preact" and fam == "preact_resnet" or \
                role == "alternet" and fam == "alternet":
            out.append((m, [0]))
        elif role == "vit" and fam == "vit" and not _pooled(plan, m):
            out.append((m, [0]))
        elif role == "gap" and fam == "vit" and _pooled(plan, m):
            out.append((m, [0]))
        elif role == "lmsa" and fam == "local_vit" and len(kernels[m]) >= 2:
            out.append((m, kernels[m]))
    if role == "gap" and not out:  # a local-attention ViT whose window covers the grid is a ViT with GAP
        out = [(m, [max(kernels[m])]) for m in models if _family(plan, m) == "local_vit" and plan.token_grid(m)
               and max(kernels[m]) >= plan.token_grid(m)]
    return out


def resolve_roles(plan) -> dict[str, dict]:
    """{role: {model, kernel_sizes, fractions, seeds, candidates}} for every role some
    configured model plays; `claims.roles` chooses among candidates (checked:
    `check`)."""
    chosen = plan.config.get("claims", {}).get("roles", {})
    dataset = plan.config["data"]["dataset"]
    out = {}
    for role in ROLES:
        found = _candidates(plan, role)
        names = [m for m, _ in found]
        if role in chosen:
            found = [(m, k) for m, k in found if m == chosen[role]]
        if not found:
            continue
        model, kernels = found[0]
        runs = [r for exp in plan.experiments.values() for r in exp if r.model == model and r.dataset == dataset]
        out[role] = {"model": model, "kernel_sizes": kernels, "candidates": names,
                     "fractions": sorted({r.fraction for r in runs}), "seeds": sorted({r.seed for r in runs})}
    return out


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
        fits = [m for m, _ in _candidates(plan, role)]
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


# ---- measurements ---------------------------------------------------------------------
class Missing(Exception):
    """A claim cannot be scored: what it needs is not in the config or the tables."""


@dataclass
class Measure:
    """One run's number as Σ num / Σ den over its units (ids), units resampled jointly with
    every other measure of the same `space`; or, with `statistic`, statistic(w) for unit
    weights w (replicates, units): a number that is no ratio of sums (a distance between
    pooled densities), w all ones for the point estimate."""
    space: str
    ids: np.ndarray
    num: np.ndarray
    den: np.ndarray
    statistic: Callable | None = None


@dataclass
class Quantity:
    """A role's number at one fraction, kernel size and epoch: the mean over its seeds."""
    label: str
    measures: list[Measure] = field(default_factory=list)
    unit: str = ""


def _rows(table: pd.DataFrame | None, name: str, role: dict, *, kernel=0, fraction=1.0, epoch=None, what=""):
    """The rows of one role's runs (all seeds) at `epoch` (None: the latest in the table)."""
    if table is None:
        raise Missing(f"needs table {name} (its probe in the config){what}")
    rows = table[(table["model"] == role["model"]) & (table["kernel_size"] == kernel) &
                 ((table["fraction"] - fraction).abs() < 1e-9)]
    if rows.empty:
        raise Missing(f"needs {name} rows of {role['model']}" + (f" (k={kernel})" if kernel else "") +
                      (f" at fraction {fraction:g}" if fraction != 1 else "") + what)
    at = int(rows["epoch"].max()) if epoch is None else epoch
    rows = rows[rows["epoch"] == at]
    if rows.empty:
        raise Missing(f"needs {name} of {role['model']} at epoch {epoch}" +
                      (what or f" (probes.{name.split('_')[0]}.epochs)"))
    return rows


def _per_seed(rows: pd.DataFrame, space: str, unit: str, value: Callable[[pd.DataFrame], pd.Series]) -> list[Measure]:
    out = []
    for _, g in rows.groupby("seed", sort=True):
        per = value(g)  # a Series indexed by unit id: the unit's value (a mean over the unit's rows)
        per = per.dropna()
        out.append(Measure(space, per.index.to_numpy(), per.to_numpy(float), np.ones(len(per))))
    return out


def error_of(t, role, label, **at) -> Quantity:
    """Test error (%), over the test images of eval_images."""
    rows = _rows(t.get("eval_images"), "eval_images", role, **at)
    return Quantity(label, _per_seed(rows, "test images", "image",
                                     lambda g: 100.0 * (~g.set_index("image")["correct"].astype(bool))), "%")


def _nep_quantity(rows: pd.DataFrame, label: str) -> Quantity:
    """NEP (%) of `rows`' eigenvalues pooled over mini-batches, per run and seed: a ratio per
    batch (negatives / eigenvalues), the batches of a run resampled together."""
    out = []
    for (run, seed), g in rows.groupby(["run", "seed"], sort=True):
        per = g.groupby("batch")["eigenvalue"]
        out.append(Measure(f"mini-batches|{run} e{int(g['epoch'].iloc[0])}", per.size().index.to_numpy(),
                           100.0 * per.apply(lambda v: (v < 0).sum()).to_numpy(float), per.size().to_numpy(float)))
    return Quantity(label, out, "%")


def nep_of(t, role, label, **at) -> Quantity:
    """NEP (%) of the Hessian spectrum pooled over mini-batches: a ratio per batch."""
    return _nep_quantity(_rows(t.get("hessian"), "hessian", role, **at), label)


def _map_table(t, items: str, summary: str, role, **at) -> pd.DataFrame:
    rows = _rows(t.get(items), items, role, **at)
    kinds = t.get(summary)
    if kinds is None:
        raise Missing(f"needs table {summary}")
    meta = kinds[["run", "epoch", "map_index", "kind"]].drop_duplicates()
    return rows.merge(meta, on=["run", "epoch", "map_index"], how="left")


def _high_freq(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (map, image): the log amplitude at the map's highest frequency (NaN for maps with
    only frequency 0), wide: images x maps in forward order."""
    top = rows.groupby("map_index")["freq"].transform("max")
    high = rows[(rows["freq"] == top) & (top > 0)]
    return high.pivot_table(index="image", columns="map_index", values="log_amplitude")


def high_freq_rise(t, role, label, **at) -> Quantity:
    """Δ log amplitude at the highest frequency, last feature map (with one) minus first."""
    rows = _map_table(t, "fourier_images", "fourier", role, **at)

    def value(g):
        wide = _high_freq(g).dropna(axis=1, how="all")
        if wide.shape[1] < 2:
            raise Missing(f"needs two feature maps of {role['model']} with a high frequency")
        return wide.iloc[:, -1] - wide.iloc[:, 0]
    return Quantity(label, _per_seed(rows, "test images (the Fourier sample)", "image", value), "Δ log amplitude")


def _step_change(wide: pd.DataFrame, kinds: dict, kind: str, role) -> pd.Series:
    """Per image: the mean over maps of `kind` of (value of the map − value of the map before)."""
    cols = list(wide.columns)
    steps = [(c, cols[i - 1]) for i, c in enumerate(cols) if i and kinds.get(c) == kind]
    if not steps:
        raise Missing(f"needs {kind} feature maps of {role['model']}")
    return sum(wide[c] - wide[p] for c, p in steps) / len(steps)


def high_freq_step(t, role, label, kind: str, **at) -> Quantity:
    """Per map of `kind`: how much it changes the high-frequency Δ log amplitude of the map before."""
    rows = _map_table(t, "fourier_images", "fourier", role, **at)

    def value(g):
        kinds = dict(zip(g["map_index"], g["kind"]))
        return _step_change(_high_freq(g).dropna(axis=1, how="all"), kinds, kind, role)
    return Quantity(label, _per_seed(rows, "test images (the Fourier sample)", "image", value), "Δ log amplitude")


def variance_step(t, role, label, kind: str, **at) -> Quantity:
    """Per map of `kind`: how much it changes the feature-map variance of the map before."""
    rows = _map_table(t, "variance_images", "variance", role, **at)

    def value(g):
        kinds = dict(zip(g["map_index"], g["kind"]))
        wide = g.pivot_table(index="image", columns="map_index", values="variance").dropna(axis=1, how="all")
        return _step_change(wide, kinds, kind, role)
    return Quantity(label, _per_seed(rows, "test images (the variance sample)", "image", value), "variance")


def noise_change(t, role, label, low_freq: float = 0.5, **at) -> Quantity:
    """Accuracy change (pp) under band noise, mean over the bands at frequencies ≥ 0.5π, per image."""
    rows = _rows(t.get("robustness_images"), "robustness_images", role, **at)
    rows = rows[rows["freq"] >= low_freq - 1e-9]
    return Quantity(label, _per_seed(rows, "test images (the band-noise sample)", "image", lambda g: 100.0 * g.assign(
        d=g["correct"].astype(float) - g["clean_correct"].astype(float)).groupby("image")["d"].mean()), "pp")


def corrupted_accuracy(t, role, label, **at) -> Quantity:
    """Mean accuracy (%) over the corruptions and severities of CIFAR-C, per image."""
    rows = _rows(t.get("corruption_images"), "corruption_images", role, **at)
    from vitprobe.data.cifar_c import CORRUPTIONS  # torchvision: only when CIFAR-C was probed
    rows = rows[rows["corruption"].isin(CORRUPTIONS)]
    return Quantity(label, _per_seed(rows, "CIFAR-C test images", "image",
                                     lambda g: 100.0 * g.groupby("image")["correct"].mean()), "%")


def _block_kinds(t, role, **at) -> pd.DataFrame:
    summary = _rows(t.get("hessian_blocks_summary"), "hessian_blocks_summary", role, **at)
    return summary[["run", "seed", "epoch", "block", "kind", "msa"]]


def block_nep_of(t, role, label, kinds: tuple[str, ...], **at) -> Quantity:
    """NEP (%) of the eigenvalues of the blocks of `kinds` (hessian_blocks), pooled over
    those blocks and the mini-batches: a ratio per batch."""
    rows = _rows(t.get("hessian_blocks"), "hessian_blocks", role, **at)
    rows = rows.merge(_block_kinds(t, role, **at), on=["run", "seed", "epoch", "block"], how="left")
    rows = rows[rows["kind"].isin(kinds)]
    if rows.empty:
        raise Missing(f"needs blocks of kind {'/'.join(kinds)} in hessian_blocks of {role['model']}")
    return _nep_quantity(rows, label)


def heterogeneity_of(t, role, label, **at) -> Quantity:
    """Mean Jensen-Shannon distance between the blocks' densities pooled over the
    mini-batches (hessian_blocks_heterogeneity.mean_js), the batches resampled."""
    from vitprobe.probes.hessian.heterogeneity import pooled_mean_js  # the probe's own definition (numpy)
    dens = _rows(t.get("hessian_blocks_density"), "hessian_blocks_density", role, **at)
    het = _rows(t.get("hessian_blocks_heterogeneity"), "hessian_blocks_heterogeneity", role, **at)
    out = []
    for (run, seed), g in dens.groupby(["run", "seed"], sort=True):
        grid = het[(het["run"] == run) & (het["seed"] == seed)].iloc[0]
        statistic, batches = pooled_mean_js(g, grid)
        out.append(Measure(f"mini-batches|{run} e{int(g['epoch'].iloc[0])}", batches, np.zeros(len(batches)),
                           np.ones(len(batches)), statistic))
    return Quantity(label, out, "JS distance")


# ---- the bootstrap of an effect --------------------------------------------------------
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


# ---- the claims -----------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    name: str                       # id: a key of CLAIMS, of claims.only and a scorecard row
    says: str                       # what the paper says
    figure: str                     # where
    roles: tuple[str, ...]          # the roles it needs
    effect: str                     # what the effect is (positive = the paper's direction)
    unit: str
    measure: Callable               # (tables, roles, spec) -> (quantities, combine)


def _role(roles: dict, name: str) -> dict:
    if name not in roles:
        raise Missing(f"needs {ROLES[name]} in the experiments")
    return roles[name]


def _small_fraction(role: dict) -> float:
    small = [f for f in role["fractions"] if f < 1]
    if not small or 1.0 not in role["fractions"]:
        raise Missing(f"needs {role['model']} at fraction 1 and at a fraction below 1 (experiment data_size)")
    return min(small)


def _kernels(role: dict) -> tuple[int, int]:
    return min(role["kernel_sizes"]), max(role["kernel_sizes"])


def _diff(a, b):
    return a - b


def _frac(f: float) -> str:
    return f"1/{round(1 / f)}" if f < 1 else "all"


def _cnn_vit(t, r, spec):
    return [error_of(t, _role(r, "cnn"), "CNN"), error_of(t, _role(r, "vit"), "ViT")], lambda c, v: v - c


def _local_global(t, r, spec):
    lm = _role(r, "lmsa")
    k, g = _kernels(lm)
    return [error_of(t, lm, f"{k}×{k}", kernel=k), error_of(t, lm, f"{g}×{g}", kernel=g)], lambda a, b: b - a


def _gap_cls(t, r, spec):
    gap = _role(r, "gap")
    return [error_of(t, gap, "GAP", kernel=gap["kernel_sizes"][-1]), error_of(t, _role(r, "vit"), "class token")], \
        lambda g, c: c - g


def _data_error(t, r, spec):
    vit = _role(r, "vit")
    f = _small_fraction(vit)
    return [error_of(t, vit, f"{_frac(f)} of the data", fraction=f), error_of(t, vit, "all data")], _diff


def _alternet_error(t, r, spec):
    return [error_of(t, _role(r, "preact"), "pre-act ResNet"), error_of(t, _role(r, "alternet"), "AlterNet")], _diff


def _warmup_nep(t, r, spec):
    e = spec["warmup_epoch"]
    what = f" at the end of warmup (epoch {e}: add it to probes.hessian.epochs)"
    qs = [nep_of(t, _role(r, "vit"), "ViT", epoch=e, what=what), nep_of(t, _role(r, "cnn"), "CNN", epoch=e, what=what)]
    return qs, _diff


def _data_nep(t, r, spec):
    vit = _role(r, "vit")
    f = _small_fraction(vit)
    return [nep_of(t, vit, f"{_frac(f)} of the data", fraction=f), nep_of(t, vit, "all data")], _diff


def _local_nep(t, r, spec):
    lm = _role(r, "lmsa")
    k, g = _kernels(lm)
    return [nep_of(t, lm, f"{g}×{g}", kernel=g), nep_of(t, lm, f"{k}×{k}", kernel=k)], _diff


def _gap_nep(t, r, spec):
    gap = _role(r, "gap")
    return [nep_of(t, _role(r, "vit"), "class token"), nep_of(t, gap, "GAP", kernel=gap["kernel_sizes"][-1])], _diff


def _fourier_depth(t, r, spec):
    return [high_freq_rise(t, _role(r, "cnn"), "CNN"), high_freq_rise(t, _role(r, "vit"), "ViT")], \
        lambda c, v: np.minimum(c, -v)


def _fourier_blocks(t, r, spec):
    vit = _role(r, "vit")
    return [high_freq_step(t, vit, "MSA", "msa"), high_freq_step(t, vit, "MLP", "mlp")], lambda a, m: np.minimum(-a, m)


def _variance_blocks(t, r, spec):
    vit = _role(r, "vit")
    return [variance_step(t, vit, "MSA", "msa"), variance_step(t, vit, "MLP", "mlp")], lambda a, m: np.minimum(-a, m)


def _msa_block_nep(t, r, spec):
    from vitprobe.probes.hessian.partition import MSA_KINDS  # the block rule; the hessian package imports torch
    vit = _role(r, "vit")
    return [block_nep_of(t, vit, "MSA blocks", MSA_KINDS), block_nep_of(t, vit, "MLP blocks", ("mlp",))], _diff


def _block_heterogeneity(t, r, spec):
    return [heterogeneity_of(t, _role(r, "vit"), "ViT"), heterogeneity_of(t, _role(r, "cnn"), "CNN")], _diff


def _noise(t, r, spec):
    return [noise_change(t, _role(r, "vit"), "ViT"), noise_change(t, _role(r, "cnn"), "CNN")], _diff


def _corruption(t, r, spec):
    return [corrupted_accuracy(t, _role(r, "alternet"), "AlterNet"),
            corrupted_accuracy(t, _role(r, "preact"), "pre-act ResNet")], _diff


CLAIMS: dict[str, Claim] = {c.name: c for c in [
    Claim("cnn_beats_vit", "a CNN has a lower test error than a ViT on small data sets", "Fig. 5a", ("cnn", "vit"),
          "ViT error − CNN error", "pp", _cnn_vit),
    Claim("local_beats_global", "local MSA (small windows) has a lower test error than global MSA", "Fig. 7a",
          ("lmsa",), "error at the largest window − at the smallest", "pp", _local_global),
    Claim("gap_beats_class_token", "global average pooling has a lower test error than the class token", "Fig. 6a",
          ("gap", "vit"), "class-token error − GAP error", "pp", _gap_cls),
    Claim("less_data_hurts_vit", "a ViT trained on less data has a higher test error", "Fig. 5b", ("vit",),
          "error on the smallest fraction − on all data", "pp", _data_error),
    Claim("alternet_beats_preact", "AlterNet has a lower test error than its pre-activation ResNet", "Fig. 12a",
          ("preact", "alternet"), "pre-act ResNet error − AlterNet error", "pp", _alternet_error),
    Claim("vit_more_negative_eigenvalues", "a ViT's Hessian has more negative eigenvalues than a CNN's at the end "
          "of warmup", "Fig. 1c, 4", ("vit", "cnn"), "NEP of the ViT − NEP of the CNN", "pp", _warmup_nep),
    Claim("less_data_more_negative_eigenvalues", "less data gives a ViT more negative eigenvalues", "Fig. 4",
          ("vit",), "NEP on the smallest fraction − on all data", "pp", _data_nep),
    Claim("local_fewer_negative_eigenvalues", "local MSA has fewer negative eigenvalues than global MSA", "Fig. 7b",
          ("lmsa",), "NEP at the largest window − at the smallest", "pp", _local_nep),
    Claim("gap_fewer_negative_eigenvalues", "GAP has fewer negative eigenvalues than the class token", "Fig. 6b",
          ("gap", "vit"), "NEP with the class token − with GAP", "pp", _gap_nep),
    Claim("vit_negative_eigenvalues_in_msa_blocks", "a ViT's negative Hessian eigenvalues sit in its MSA blocks: "
          "their diagonal Hessian blocks have a larger NEP than its MLP blocks' (vitprobe's per-block reading of "
          "the paper's claim that MSAs make the loss non-convex)", "extends Fig. 1c, 4", ("vit",),
          "NEP of the ViT's MSA blocks − NEP of its MLP blocks (pooled top-k eigenvalues of each H_bb)", "pp",
          _msa_block_nep),
    Claim("vit_blocks_more_heterogeneous", "a ViT's parameter blocks have more heterogeneous Hessian spectra than "
          "a CNN's (Zhang et al. 2024, read on the paper's models)", "extends Fig. 1c, 4", ("vit", "cnn"),
          "mean Jensen-Shannon distance between the ViT's block densities − the CNN's", "JS distance",
          _block_heterogeneity),
    Claim("msa_low_pass_conv_high_pass", "MSAs reduce high-frequency signals over depth, convolutions amplify them",
          "Fig. 2a, 8", ("cnn", "vit"), "the smaller of: the CNN's rise of the high-frequency Δ log amplitude from "
          "its first feature map to its last, and the ViT's fall", "Δ log amplitude", _fourier_depth),
    Claim("vit_msa_lowers_mlp_raises_high_freq", "in a ViT, MSA blocks lower the high-frequency Δ log amplitude and "
          "MLP blocks raise it", "Fig. 8b", ("vit",), "the smaller of: the mean fall at an MSA map (from the map "
          "before it) and the mean rise at an MLP map", "Δ log amplitude", _fourier_blocks),
    Claim("msa_lowers_variance", "in a ViT, MSA blocks lower the feature-map variance and MLP blocks raise it",
          "Fig. 9", ("vit",), "the smaller of: the mean fall of the variance at an MSA map and its mean rise at an "
          "MLP map", "variance", _variance_blocks),
    Claim("vit_robust_to_high_freq_noise", "a ViT loses less accuracy than a CNN under high-frequency noise",
          "Fig. 2b", ("vit", "cnn"), "ViT − CNN accuracy change under band noise at frequencies ≥ 0.5π", "pp", _noise),
    Claim("alternet_more_robust", "AlterNet is more robust to corruptions than its pre-activation ResNet",
          "Fig. 12b", ("alternet", "preact"), "AlterNet − pre-act ResNet mean accuracy over CIFAR-C's 15 corruptions "
          "x 5 severities", "pp", _corruption),
]}

#: The tables the claims read (those the config makes are the scorecard job's inputs).
TABLES = ("eval_images", "hessian", "hessian_blocks", "hessian_blocks_summary", "hessian_blocks_density",
          "hessian_blocks_heterogeneity", "fourier", "fourier_images", "variance", "variance_images",
          "robustness_images", "corruption_images")

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
