"""The one catalogue of probes and figures. The CLI (one verb per probe), the run plan,
the result tables' writers and the Snakemake rules (one rule per configured probe and
figure) all read it; nothing else lists them.

Adding a probe: its runner (`vitprobe.analyze`), its math (`vitprobe.probes.<name>`), one
`Probe` entry here, its table's columns (`vitprobe.results.TABLES`), its config block in
`config.schema.yaml`, its tests. Adding a figure: its module (`vitprobe.figures.<name>`),
one `Figure` entry here, its caption `workflow/report/<name>.rst`.

This module sits at the bottom: it imports nothing of vitprobe.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str                 # CLI verb and config key under `probes:`
    runner: str               # "module:function", called as runner(spec, checkpoint, outs, device)
    tables: tuple[str, ...]   # the per-checkpoint tables its job writes (`--out TABLE=PATH` each)
    help: str                 # one line: what it computes
    rule: str = ""            # Snakemake rule name (default: the probe's name)
    merge: str = ""           # "module:function" joining shard tables; set: the job may be split (`shards`)

    @property
    def rule_name(self) -> str:
        return self.rule or self.name


@dataclass(frozen=True)
class Figure:
    name: str                 # Snakemake rule and target name, config key under `figures:`
    module: str               # module with plot(spec, tables, out)
    tables: tuple[str, ...]   # the tables it reads (`--table NAME=PATH` each file)
    paper: str                # the paper's figure it reproduces
    shows: str                # one line for the README

    @property
    def caption(self) -> str:
        """The report caption, relative to workflow/rules/."""
        return f"../report/{self.name}.rst"


PROBES: dict[str, Probe] = {p.name: p for p in [
    Probe("hessian", "vitprobe.analyze:hessian", ("hessian", "hessian_summary"),
          "Hessian max-eigenvalue spectrum of a checkpoint, with NEP, APE and trace (hessian_summary)",
          merge="vitprobe.analyze:merge_hessian"),
    Probe("eval", "vitprobe.analyze:evaluate_checkpoint", ("eval",),
          "test error, NLL, ECE and NLL_train of a checkpoint", rule="evaluate"),
    Probe("fourier", "vitprobe.analyze:fourier", ("fourier",),
          "relative log amplitude of the Fourier spectrum of every feature map"),
    Probe("variance", "vitprobe.analyze:variance", ("variance",), "variance of every feature map"),
    Probe("robustness", "vitprobe.analyze:robustness", ("robustness",), "accuracy under frequency-band noise"),
    Probe("landscape", "vitprobe.analyze:landscape", ("landscape",),
          "loss landscape along two random directions (the release's definition or Li et al.'s)"),
    Probe("corruption", "vitprobe.analyze:corruption", ("corruption",),
          "accuracy and NLL on CIFAR-10-C/100-C per corruption and severity"),
]}

FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("fig_hessian", "vitprobe.figures.hessian", ("hessian",), "Fig. 1c, 4",
           "Hessian max-eigenvalue spectra, NEP/APE"),
    Figure("fig_fourier", "vitprobe.figures.fourier", ("fourier",), "Fig. 2a, 8",
           "relative log amplitude of feature maps; Δ at high frequency vs depth"),
    Figure("fig_variance", "vitprobe.figures.variance", ("variance",), "Fig. 9",
           "feature-map variance vs depth, MSA shaded"),
    Figure("fig_robustness", "vitprobe.figures.robustness", ("robustness",), "Fig. 2b",
           "accuracy change under frequency-band noise"),
    Figure("fig_landscape", "vitprobe.figures.landscape", ("landscape",), "Fig. 1a",
           "1-D and 2-D loss landscapes (NLL + L2)"),
    Figure("fig_nll_error", "vitprobe.figures.nll_error", ("eval",), "Fig. 5",
           "NLL_train vs error; both vs data fraction"),
    Figure("fig_gap", "vitprobe.figures.gap", ("eval", "hessian"), "Fig. 6",
           "class token vs GAP: NLL/error and spectra"),
    Figure("fig_kernel_size", "vitprobe.figures.kernel_size", ("eval", "hessian"), "Fig. 7",
           "local MSA kernel 3/5/8: error, NLL, spectra"),
    Figure("fig_alternet", "vitprobe.figures.alternet", ("eval", "robustness", "hessian"), "Fig. 12",
           "accuracy vs robustness, spectra: ResNet vs AlterNet"),
    Figure("fig_corruption", "vitprobe.figures.corruption", ("corruption",), "Fig. 12b",
           "clean accuracy vs mean accuracy over 15 CIFAR-C corruptions x 5 severities"),
    Figure("fig_buildup", "vitprobe.figures.buildup", ("search",), "Fig. 12a",
           "the AlterNet build-up search: held-out accuracy per step, the kept path"),
]}

# The per-run table training writes (not a probe's).
TRAIN_LOG = "train_log"
# The table of the build-up search (one per workflow, written by `vitprobe search-table`).
SEARCH_TABLE = "search"


def probe_of(table: str) -> str:
    """The probe whose job writes a per-checkpoint table."""
    for probe in PROBES.values():
        if table in probe.tables:
            return probe.name
    raise ValueError(f"no probe writes table {table!r}; tables: "
                     f"{', '.join(t for p in PROBES.values() for t in p.tables)}")


def tables_of(probe: str) -> tuple[str, ...]:
    return PROBES[probe].tables


def resolve(target: str):
    """The object named by "module:attribute"."""
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
