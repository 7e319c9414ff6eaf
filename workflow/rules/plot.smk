# One rule per figure (vitprobe.figures.FIGURES); each needs only the runs its series select.
rule fig_hessian:
    input:
        lambda wildcards: figure_inputs("fig_hessian"),
    output:
        report(paths.FIGURE.format(figure="fig_hessian"), caption="../report/fig_hessian.rst", category="Figures"),
    params:
        **figure_params("fig_hessian"),
    log:
        "logs/plot/fig_hessian.log",
    shell:
        "{params.vitprobe} plot --figure {params.figure} --spec {params.spec:q} --out {output} {input} > {log} 2>&1"


use rule fig_hessian as fig_fourier with:
    input:
        lambda wildcards: figure_inputs("fig_fourier"),
    output:
        report(paths.FIGURE.format(figure="fig_fourier"), caption="../report/fig_fourier.rst", category="Figures"),
    params:
        **figure_params("fig_fourier"),
    log:
        "logs/plot/fig_fourier.log",


use rule fig_hessian as fig_variance with:
    input:
        lambda wildcards: figure_inputs("fig_variance"),
    output:
        report(paths.FIGURE.format(figure="fig_variance"), caption="../report/fig_variance.rst", category="Figures"),
    params:
        **figure_params("fig_variance"),
    log:
        "logs/plot/fig_variance.log",


use rule fig_hessian as fig_robustness with:
    input:
        lambda wildcards: figure_inputs("fig_robustness"),
    output:
        report(paths.FIGURE.format(figure="fig_robustness"), caption="../report/fig_robustness.rst", category="Figures"),
    params:
        **figure_params("fig_robustness"),
    log:
        "logs/plot/fig_robustness.log",


use rule fig_hessian as fig_landscape with:
    input:
        lambda wildcards: figure_inputs("fig_landscape"),
    output:
        report(paths.FIGURE.format(figure="fig_landscape"), caption="../report/fig_landscape.rst", category="Figures"),
    params:
        **figure_params("fig_landscape"),
    log:
        "logs/plot/fig_landscape.log",
