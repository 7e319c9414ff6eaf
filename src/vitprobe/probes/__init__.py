"""Analyses run on a trained checkpoint (Hessian spectrum, Fourier, variance, robustness, ...)."""
