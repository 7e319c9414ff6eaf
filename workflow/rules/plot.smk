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


use rule fig_hessian as fig_nll_error with:
    input:
        lambda wildcards: figure_inputs("fig_nll_error"),
    output:
        report(paths.FIGURE.format(figure="fig_nll_error"), caption="../report/fig_nll_error.rst", category="Figures"),
    params:
        **figure_params("fig_nll_error"),
    log:
        "logs/plot/fig_nll_error.log",


use rule fig_hessian as fig_gap with:
    input:
        lambda wildcards: figure_inputs("fig_gap"),
    output:
        report(paths.FIGURE.format(figure="fig_gap"), caption="../report/fig_gap.rst", category="Figures"),
    params:
        **figure_params("fig_gap"),
    log:
        "logs/plot/fig_gap.log",


use rule fig_hessian as fig_kernel_size with:
    input:
        lambda wildcards: figure_inputs("fig_kernel_size"),
    output:
        report(paths.FIGURE.format(figure="fig_kernel_size"), caption="../report/fig_kernel_size.rst", category="Figures"),
    params:
        **figure_params("fig_kernel_size"),
    log:
        "logs/plot/fig_kernel_size.log",


use rule fig_hessian as fig_alternet with:
    input:
        lambda wildcards: figure_inputs("fig_alternet"),
    output:
        report(paths.FIGURE.format(figure="fig_alternet"), caption="../report/fig_alternet.rst", category="Figures"),
    params:
        **figure_params("fig_alternet"),
    log:
        "logs/plot/fig_alternet.log",
