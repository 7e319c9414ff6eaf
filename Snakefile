# vitprobe: train the grid of config.yaml, probe every checkpoint, aggregate, draw figures.
# Quick start: `snakemake --profile profiles/demo` (offline demo), `snakemake -c2 figures/fig_hessian.pdf`.
# The config you pass is the config: `--configfile mine.yaml` replaces config.yaml (it is not
# merged into it); `--config train__epochs=10` overrides one key (workflow/rules/common.smk).
from snakemake.utils import min_version

min_version("9.0")

DEFAULT_CONFIG = "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/search.smk"


rule all:
    input:
        all_targets(),
