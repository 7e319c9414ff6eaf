"""Cost of the Hessian top-5 backends at equal accuracy, and the cost of one HVP.

For a small CNN and a small ViT (batch 16 of 32x32 inputs, 100 classes, float32, eval mode):

1. reference: lanczos at tol 1e-10 on the float64 copy of the model;
2. for each method, the loosest tol in TOLS whose top-5 is within 1e-3 per value of the
   reference ("equal accuracy"), with its HVP count and seconds, and what tol=1e-3 gives;
3. one HVP (graph kept, pyhessian's way) and the first create_graph backward, each divided
   by one plain forward+backward.

Times are CPU seconds of this process (time.process_time) next to wall seconds: on a shared
machine wall time swings several-fold with other people's load, CPU time at one thread much
less. Hence one torch thread by default.

Run: .venv/bin/python benchmarks/bench_hessian.py [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn

from vitprobe.probes.hessian import double_backward_attention, loss_fn, make_hvp, top_eigenvalues

K = 5
TARGET = 1e-3
TOLS = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]
MAX_ITER = 1000  # per eigenvalue, power/pyhessian


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.GELU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GELU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 100),
    )


def small_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=2,
                             mlp_ratio=2.0, num_classes=100)


def warm_up(model, x, y, steps):
    """A few AdamW steps, so that the spectrum is not only the one at initialization."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


def median_time(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def timed(method, model, x, y, tol, **kw):
    """top_eigenvalues with info["cpu"] (CPU seconds) added; power's non-convergence is expected here."""
    t = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values, info = top_eigenvalues(model, x, y, k=K, method=method, tol=tol, return_info=True, **kw)
    info["cpu"] = time.process_time() - t
    return values, info


def hvp_ratios(model, x, y, reps):
    params = [p for p in model.parameters() if p.requires_grad]

    def fwd_bwd():
        torch.autograd.grad(loss_fn(model(x), y), params)

    with double_backward_attention():
        t_fb = median_time(fwd_bwd, reps)
        t_setup = median_time(lambda: make_hvp(model, x, y), reps)
        hvp, _ = make_hvp(model, x, y)
        v = torch.randn(sum(p.numel() for p in params))
        t_hvp = median_time(lambda: hvp(v), reps)
    return t_fb, t_setup, t_hvp


def rel_err(values, ref):
    return float(np.max(np.abs(values - ref) / np.abs(ref)))


def cheapest_at_target(model, x, y, method, ref):
    """Loosest tol reaching TARGET accuracy: (tol, values, info, reached). Gives up, returning
    the last run, once an iteration runs into max_iter (a tighter tol cannot help then)."""
    for tol in TOLS:
        kw = {} if method == "lanczos" else {"max_iter": MAX_ITER}
        values, info = timed(method, model, x, y, tol, **kw)
        if rel_err(values, ref) <= TARGET:
            return tol, values, info, True
        # pyhessian does not report convergence: same budget test as power
        if info["converged"] is False or info["n_hvp"] >= K * MAX_ITER // 2:
            break
    return tol, values, info, False


def bench(name, model, x, y, methods):
    n = sum(p.numel() for p in model.parameters())
    print(f"\n== {name}: {n} parameters, batch {len(x)}, {torch.get_num_threads()} threads")
    t_fb, t_setup, t_hvp = hvp_ratios(model, x, y, reps=10)
    print(f"CPU: forward+backward {t_fb * 1e3:.1f} ms | first create_graph backward {t_setup * 1e3:.1f} ms "
          f"({t_setup / t_fb:.2f}x) | one HVP {t_hvp * 1e3:.1f} ms ({t_hvp / t_fb:.2f}x)")

    ref64, info64 = timed("lanczos", copy.deepcopy(model).double(), x.double(), y, 1e-10)
    print(f"reference (lanczos, float64, tol 1e-10): {np.array2string(ref64, precision=5)} "
          f"[{info64['n_hvp']} HVPs, {info64['cpu']:.1f} s CPU]")

    print(f"{'method':<10} {'tol':>7} {'n_hvp':>6} {'cpu s':>7} {'wall s':>7} {'max rel err':>12}   | at tol=1e-3: "
          f"{'n_hvp':>6} {'cpu s':>7} {'max rel err':>12}")
    rows = {}
    for method in methods:
        kw = {} if method == "lanczos" else {"max_iter": MAX_ITER}
        v3, i3 = timed(method, model, x, y, 1e-3, **kw)
        tol, v, info, reached = cheapest_at_target(model, x, y, method, ref64)
        if reached:
            rows[method] = info
        print(f"{method:<10} {tol:>7.0e} {info['n_hvp']:>6} {info['cpu']:>7.2f} {info['seconds']:>7.2f} "
              f"{rel_err(v, ref64):>12.2e}{'' if reached else ' (NOT REACHED)'}   | "
              f"{'':>12} {i3['n_hvp']:>6} {i3['cpu']:>7.2f} {rel_err(v3, ref64):>12.2e}")
    if "lanczos" in rows:
        for method in methods:
            if method in rows and method != "lanczos":
                print(f"  {method} / lanczos at equal accuracy: "
                      f"{rows[method]['n_hvp'] / rows['lanczos']['n_hvp']:.1f}x HVPs, "
                      f"{rows[method]['cpu'] / rows['lanczos']['cpu']:.1f}x CPU time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="lanczos and power only, CNN only")
    parser.add_argument("--steps", type=int, default=20, help="AdamW warm-up steps before measuring")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=g)
    y = torch.randint(0, 100, (16,), generator=g)
    methods = ["lanczos", "power"] if args.quick else ["lanczos", "power", "pyhessian"]
    for name, build in [("small CNN", small_cnn), ("small ViT", small_vit)][: 1 if args.quick else 2]:
        torch.manual_seed(0)
        for state, steps in [("init", 0), (f"after {args.steps} AdamW steps", args.steps)]:
            model = warm_up(build(), x, y, steps)
            bench(f"{name} ({state})", model, x, y, methods)


if __name__ == "__main__":
    main()
