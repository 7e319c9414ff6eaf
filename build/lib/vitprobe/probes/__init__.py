"""Analyses run on a trained checkpoint (Hessian spectrum, Fourier, variance, robustness, ...)."""


def no_progress(iterable):
    """The default ``progress`` of the probes' loops: the iterable itself, no bar. Runners
    pass a wrapper instead (``vitprobe.analyze.progress``); any callable that takes an
    iterable and yields its items will do."""
    return iterable
