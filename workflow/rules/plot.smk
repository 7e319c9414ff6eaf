# One rule per figure; each needs only the runs its series select.
rule fig_hessian:
    input:
        lambda wildcards: figure_inputs("fig_hessian"),
    output:
        report(
            paths.FIGURE.format(figure="fig_hessian"),
            caption="../report/fig_hessian.rst",
            category="Figures",
        ),
    params:
        vitprobe=VITPROBE,
        spec=lambda wildcards: figure_spec("fig_hessian"),
    log:
        "logs/plot/fig_hessian.log",
    shell:
        "{params.vitprobe} plot --figure fig_hessian --spec {params.spec:q} --out {output} {input} > {log} 2>&1"
