# One rule per configured figure, named after it (it draws vitprobe.catalog.FIGURES[its name, or
# its `figure:` key], so one figure can be configured twice); it reads only the
# runs its series select, each file passed by table name (`--table NAME=PATH`). The PNG is
# what the report shows inline, with the figure's caption.
for _figure in config["figures"]:

    rule:
        name:
            _figure
        input:
            **{t: (lambda wildcards, fig=_figure, t=t: figure_inputs(fig, t)) for t in PLAN.figure_tables(_figure)},
        output:
            pdf=LAYOUT.figure("pdf").format(figure=_figure),
            png=report(
                LAYOUT.figure("png").format(figure=_figure),
                caption=FIGURES[PLAN.figure_kind(_figure)].caption,
                category="Figures",
            ),
        log:
            LAYOUT.log(f"plot/{_figure}"),
        params:
            **figure_params(_figure),
            tables=lambda wildcards, input: named_args("--table", input),
        shell:
            "vitprobe plot --figure {params.figure} --spec {params.spec:q} {params.tables}"
            " --out {output.pdf} --out {output.png} > {log} 2>&1"


# Last resort for a figure or aggregated-table target that no rule makes (e.g. a typo): its
# input function ends the run with one line saying what the config does make.
rule no_such_target:
    input:
        no_such_target,
    output:
        "{target}.{ext}",
    wildcard_constraints:
        ext="pdf|png|parquet",
        target=unknown_targets_regex(),
