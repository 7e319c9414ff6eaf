"""The catalogue of the paper's claims: what each says, where, and how its effect is measured
(a function of the result tables and the roles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vitprobe.claims.measures import (
    Missing,
    block_nep_of,
    cka_statistic_of,
    corrupted_accuracy,
    error_of,
    heterogeneity_of,
    high_freq_rise,
    high_freq_step,
    nep_of,
    noise_change,
    variance_step,
)
from vitprobe.claims.roles import ROLES


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


def _stage_blocks(t, r, spec):
    from vitprobe.probes.cka import stage_contrast  # the probe's own definition (numpy, pandas)
    found, why = [], []
    for role, label in (("cnn", "CNN"), ("preact", "pre-act ResNet"), ("alternet", "AlterNet")):
        try:
            found.append(cka_statistic_of(t, _role(r, role), label, stage_contrast))
        except Missing as exc:
            why.append(str(exc))
    if not found:
        raise Missing("; ".join(why))
    return found, lambda *gaps: np.minimum.reduce(gaps)


def _uniform_vit(t, r, spec):
    from vitprobe.probes.cka import far_similarity  # the probe's own definition (numpy, pandas)
    return [cka_statistic_of(t, _role(r, "vit"), "ViT", far_similarity),
            cka_statistic_of(t, _role(r, "cnn"), "CNN", far_similarity)], _diff


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
    Claim("stages_are_blocks", "multi-stage networks behave like a series of small individual models: feature maps "
          "within a stage are more similar than maps of different stages", "Fig. 10a", ("cnn", "preact", "alternet"),
          "the smallest, over the multi-stage models (CNN, pre-act ResNet, AlterNet) that have a stage of two or more "
          "maps, of: mean mini-batch CKA within a stage − across stages (the stem's pairs left out)", "CKA",
          _stage_blocks),
    Claim("vit_representations_uniform", "a ViT's representations are more uniform across depth than a CNN's "
          "(Raghu et al. 2021, read on the paper's models)", "extends Fig. 10a", ("vit", "cnn"),
          "mean mini-batch CKA of the ViT's maps at least half the depth apart − the CNN's", "CKA", _uniform_vit),
    Claim("vit_robust_to_high_freq_noise", "a ViT loses less accuracy than a CNN under high-frequency noise",
          "Fig. 2b", ("vit", "cnn"), "ViT − CNN accuracy change under band noise at frequencies ≥ 0.5π", "pp", _noise),
    Claim("alternet_more_robust", "AlterNet is more robust to corruptions than its pre-activation ResNet",
          "Fig. 12b", ("alternet", "preact"), "AlterNet − pre-act ResNet mean accuracy over CIFAR-C's 15 corruptions "
          "x 5 severities", "pp", _corruption),
]}

#: The tables the claims read (those the config makes are the scorecard job's inputs).
TABLES = ("eval_images", "hessian", "hessian_blocks", "hessian_blocks_summary", "hessian_blocks_density",
          "hessian_blocks_heterogeneity", "fourier", "fourier_images", "variance", "variance_images",
          "robustness_images", "corruption_images", "cka_maps", "cka_batches")
