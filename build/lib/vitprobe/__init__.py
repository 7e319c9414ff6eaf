"""vitprobe: train vision models and probe them (Hessian, Fourier, variance, robustness).

`vitprobe.load_checkpoint(path)` gives a checkpoint's model, ready for analysis; it is
imported on first use, so `import vitprobe` stays light (no torch)."""

__version__ = "0.1.0"
__all__ = ["load_checkpoint"]


def __getattr__(name):
    if name == "load_checkpoint":
        from vitprobe.runtime import load_checkpoint
        return load_checkpoint
    raise AttributeError(f"module 'vitprobe' has no attribute {name!r}")
