# One rule per configured figure (vitprobe.figures.FIGURES), named after it; each needs only
# the runs its series select. The PNG is what the report shows inline, with its caption.
for _figure in config["figures"]:

    rule:
        name:
            _figure
        input:
            lambda wildcards, fig=_figure: figure_inputs(fig),
        output:
            pdf=LAYOUT.figure("pdf").format(figure=_figure),
            png=report(
                LAYOUT.figure("png").format(figure=_figure),
                caption=f"../report/{_figure}.rst",
                category="Figures",
            ),
        params:
            **figure_params(_figure),
        log:
            LAYOUT.log(f"plot/{_figure}"),
        shell:
            "{VITPROBE} plot --figure {params.figure} --spec {params.spec:q} --out {output.pdf} --out {output.png}"
            " {input} > {log} 2>&1"
