"""The one device switch: every CUDA-only path (bf16 autocast, channels_last,
torch.compile) is decided here, so the same code runs on CPU in tests and on GPUs for users.

`rehearse` is the CPU with every one of those tricks on, as on CUDA: the GPU path run where
there is no GPU (tests, CI), so that a user's first GPU day is not the first time it runs.
Its torch.compile captures graphs and their autograd (backend `aot_eager`) but generates no
code: inductor writes C++ on a CPU, not the GPU's Triton, and takes a minute per tiny model.
What a CPU cannot rehearse either: CUDA memory statistics, host-to-device copies and their
pinned memory, the GPU kernels (cuDNN, GPU RandAugment's ops); `benchmarks/gpu_check.py`
runs those on a GPU."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from vitprobe.config.job import DEVICE_CHOICES


@dataclass(frozen=True)
class Device:
    """Where to run and which accelerator-only tricks are on."""

    torch_device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 on CUDA; None = full precision
    channels_last: bool
    pin_memory: bool
    compile: str | None = None          # torch.compile backend of the training step (with `train.compile`)

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    @property
    def accelerated(self) -> bool:
        """Any of the tricks on (CUDA, `rehearse`)."""
        return self.autocast_dtype is not None or self.channels_last or self.compile is not None

    def exact(self) -> "Device":
        """The same device in float32 without the tricks: for what is defined in float32
        (curvature, losses: the `exact` probes, which also run under `full_precision`)."""
        return Device(self.torch_device, None, channels_last=False, pin_memory=self.pin_memory)

    def autocast(self):
        """Mixed-precision context for forward passes (a no-op on CPU)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.torch_device.type, dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def small_ops(self):
        """Context for the many small tensor ops of batch augmentation. On CPU they run on one
        thread: with more, OpenMP threads spin-wait at every tiny op and, on a shared machine,
        crop+flip of a batch of 128 took 76 ms instead of 0.4 ms (benchmarks/bench_training.py)."""
        if self.is_cuda:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.torch_device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


@contextlib.contextmanager
def full_precision():
    """float32 products as float32: TF32 off for CUDA's matrix products and cuDNN's
    convolutions (cuDNN's are TF32 by default, a 10-bit mantissa; on an H200 they moved a
    ResNet's feature-map spectra 0.9 % from the CPU's, 1e-5 without), restored on exit. For
    the `exact` probes; the flags mean nothing on a CPU."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def resolve(name: str = "auto") -> Device:
    """'auto' picks CUDA when available, else CPU; 'cuda' without a GPU is an error;
    'rehearse' is the CPU with CUDA's tricks on (bf16 autocast, channels_last, compile)."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch.cuda.is_available() is False")
    if use_cuda:
        return Device(torch.device("cuda"), torch.bfloat16, channels_last=True, pin_memory=True, compile="inductor")
    if name == "rehearse":  # compile's graph capture and autograd, not inductor's C++ (a minute per tiny model)
        return Device(torch.device("cpu"), torch.bfloat16, channels_last=True, pin_memory=False, compile="aot_eager")
    return Device(torch.device("cpu"), None, channels_last=False, pin_memory=False)


def of(device=None, model: torch.nn.Module | None = None) -> Device:
    """A `Device` for library calls: `device` itself if it is one, else full precision on the
    torch device `device` (None: the model's, else the CPU), no accelerator tricks."""
    if isinstance(device, Device):
        return device
    if device is None:
        p = next(model.parameters(), None) if model is not None else None
        device = p.device if p is not None else "cpu"
    return Device(torch.device(device), None, channels_last=False, pin_memory=False)
