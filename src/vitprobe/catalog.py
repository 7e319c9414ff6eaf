"""The one catalogue of probes and figures. The CLI (one verb per probe), the run plan, the
result tables and the Snakemake rules (one rule per configured probe and figure) all read it;
nothing else lists them.

Probes are found, not listed: every package of `vitprobe.probes` whose ``__init__`` defines
``PROBE`` (see that package's docstring). Reading the catalogue imports no torch: a probe's
declaration is numpy, pandas and pyarrow; its ``measure`` module (torch) is imported by the
jobs that measure (`measure_of`). Figures are one line each below, beside their module
`vitprobe.figures.<name>` and caption `workflow/report/<name>.rst`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from vitprobe import probes as _probes
from vitprobe.columns import SEARCH_TABLE, TRAIN_LOG  # noqa: F401 (the two tables no probe writes, named here too)
from vitprobe.probes import Probe

# The order of the CLI's verbs and of the reference pages (new probes come after these).
_ORDER = {name: i for i, name in enumerate(["hessian", "hessian_blocks", "eval", "fourier", "variance", "robustness",
                                            "landscape", "corruption"])}


@functools.cache
def probe_modules() -> dict[str, ModuleType]:
    """Every probe module, by probe name, in a fixed order (the modules' names, sorted)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(_probes.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_probes.__name__}.{info.name}")
        probe = getattr(module, "PROBE", None)
        if isinstance(probe, Probe):
            if probe.name in found:
                raise RuntimeError(f"two probe modules declare probe {probe.name!r}")
            found[probe.name] = module
    return dict(sorted(found.items(), key=lambda kv: _ORDER.get(kv[0], len(_ORDER))))


PROBES: dict[str, Probe] = {name: m.PROBE for name, m in probe_modules().items()}


@dataclass(frozen=True)
class Figure:
    name: str                 # Snakemake rule and target name, config key under `figures:`
    module: str               # module with plot(spec, tables, out)
    tables: tuple[str, ...]   # the tables it reads (`--table NAME=PATH` each file)
    paper: str                # the paper's figure it reproduces
    shows: str                # one line for the README
    needs: tuple[str, ...] = ("series",)  # keys its config block must have (the plan checks them)

    @property
    def caption(self) -> str:
        """The report caption, relative to workflow/rules/."""
        return f"../report/{self.name}.rst"


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("fig_hessian", "vitprobe.figures.hessian", ("hessian", "hessian_summary"), "Fig. 1c, 4",
           "Hessian max-eigenvalue spectra, NEP/APE", needs=("series", "epoch")),
    Figure("fig_hessian_blocks", "vitprobe.figures.hessian_blocks",
           ("hessian_blocks", "hessian_blocks_summary", "hessian_blocks_density", "hessian_blocks_heterogeneity"),
           "extends Fig. 1c, 4",
           "NEP and λ_max per parameter block vs depth, MSA shaded; heterogeneity of the block spectra"),
    Figure("fig_fourier", "vitprobe.figures.fourier", ("fourier", "fourier_images"), "Fig. 2a, 8",
           "relative log amplitude of feature maps; Δ at high frequency vs depth"),
    Figure("fig_variance", "vitprobe.figures.variance", ("variance", "variance_images"), "Fig. 9",
           "feature-map variance vs depth, MSA shaded"),
    Figure("fig_robustness", "vitprobe.figures.robustness", ("robustness", "robustness_images"), "Fig. 2b",
           "accuracy change under frequency-band noise"),
    Figure("fig_landscape", "vitprobe.figures.landscape", ("landscape",), "Fig. 1a",
           "1-D and 2-D loss landscapes (NLL + L2)"),
    Figure("fig_nll_error", "vitprobe.figures.nll_error", ("eval", "eval_images"), "Fig. 5",
           "NLL_train vs error; both vs data fraction"),
    Figure("fig_gap", "vitprobe.figures.gap", ("eval", "eval_images", "hessian", "hessian_summary"), "Fig. 6",
           "class token vs GAP: NLL/error and spectra"),
    Figure("fig_kernel_size", "vitprobe.figures.kernel_size", ("eval", "eval_images", "hessian", "hessian_summary"),
           "Fig. 7",
           "local MSA kernel 3/5/8: error, NLL, spectra"),
    Figure("fig_alternet", "vitprobe.figures.alternet",
           ("eval", "eval_images", "robustness", "robustness_images", "hessian", "hessian_summary"), "Fig. 12",
           "accuracy vs robustness, spectra: ResNet vs AlterNet"),
    Figure("fig_corruption", "vitprobe.figures.corruption", ("corruption", "corruption_images"), "Fig. 12b",
           "clean accuracy vs mean accuracy over 15 CIFAR-C corruptions x 5 severities"),
    Figure("fig_cka", "vitprobe.figures.cka", ("cka", "cka_maps", "cka_batches"), "Fig. 10a",
           "mini-batch CKA between every pair of feature maps: a block per stage"),
    Figure("fig_lesion", "vitprobe.figures.lesion", ("lesion", "lesion_images"), "Fig. 10b",
           "error increase when one residual unit is removed, against depth; subsampling units shaded"),
    Figure("fig_buildup", "vitprobe.figures.buildup", ("search",), "Fig. 12a",
           "the AlterNet build-up search: held-out accuracy per step, the kept path", needs=()),
]}



def probe_of(table: str) -> str:
    """The probe whose job writes a per-checkpoint table."""
    for probe in PROBES.values():
        if table in probe.tables:
            return probe.name
    raise ValueError(f"no probe writes table {table!r}; tables: "
                     f"{', '.join(t for p in PROBES.values() for t in p.tables)}")


def tables_of(probe: str) -> tuple[str, ...]:
    return PROBES[probe].table_names


def module_of(probe: str) -> ModuleType:
    """The probe's declaration: its PROBE, `headline`, `intervals`, `check`, `merge` (no torch)."""
    return probe_modules()[probe]


def measure_module(probe: str) -> str:
    """The name of the probe's measure module, `vitprobe.probes.<package>.measure`."""
    return f"{probe_modules()[probe].__name__}.measure"


def measure_of(probe: str) -> ModuleType:
    """The probe's measure module: its `compute` and `run` (torch)."""
    return importlib.import_module(measure_module(probe))
