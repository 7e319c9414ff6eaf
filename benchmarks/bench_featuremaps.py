"""Fourier + variance probes at 224 px: peak memory against the number of images.

timm's ResNet-50 and ViT-Ti (`resnet50`, `vit_tiny_patch16_224`, weights: init) on random
uint8 224x224 images, normalised with ImageNet's mean/std, as the pipeline's fourier and
variance jobs do it: chunks of 16 images, each map reduced to its log-amplitude curve and
its spatial variance inside the forward pass (`vitprobe.analysis.featuremaps.map_statistics`), sums
weighted by chunk size. Each (model, n_images) runs in a fresh process, which reports its
own peak RSS (ru_maxrss) and images/s; the chunks are drawn on demand, so nothing but the
statistics grows with n_images. Printed: the table, and per model the ratio of peak RSS at
the largest n to that at the smallest (the goal: within 1.5x).

Baseline in the same table: "stored maps" = `vitprobe.analysis.featuremaps.feature_maps` on one chunk
of 16 images (every map of the chunk held at once, then reduced), the way the probes read
maps before streaming, for its peak RSS at one chunk.

Run: .venv/bin/python benchmarks/bench_featuremaps.py [--sizes 64 512] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CHUNK = 16
MODELS = ("resnet50", "vit_tiny_patch16_224")


def child(arch: str, n: int, threads: int, device: str, stored: bool) -> dict:
    import numpy as np
    import torch

    from vitprobe import models
    from vitprobe.analysis.featuremaps import feature_maps, map_statistics
    from vitprobe.data.augment import normalize
    from vitprobe.probes.fourier.measure import relative_log_amplitude
    from vitprobe.probes.variance.measure import feature_map_variance

    torch.set_num_threads(threads)
    model = models.create_any(arch).eval().to(device)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    stats = {"f": lambda t: relative_log_amplitude(t).cpu().numpy(), "v": feature_map_variance}
    sums = None
    start = time.perf_counter()
    for i in range(0, n, CHUNK):
        gen = torch.Generator().manual_seed(i)
        x = torch.randint(0, 256, (min(CHUNK, n - i), 3, 224, 224), dtype=torch.uint8, generator=gen)
        x = normalize(x.to(device), mean, std)
        if stored:
            maps = [{k: f(m.tensor) for k, f in stats.items()} for m in feature_maps(model, x)]
        else:
            maps = [m[5] for m in map_statistics(model, x, stats)]
        part = [np.concatenate([np.atleast_1d(m["f"]), [m["v"]]]) * len(x) for m in maps]
        sums = part if sums is None else [a + b for a, b in zip(sums, part)]
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak_gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda" else float("nan")
    return {"arch": arch, "n": n, "maps": len(sums), "seconds": seconds, "images_per_s": n / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mb": peak_gpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=3, metavar=("ARCH", "N", "STORED"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        arch, n, stored = args.child
        print(json.dumps(child(arch, int(n), args.threads, args.device, stored == "1")))
        return

    def run(arch, n, stored):
        cmd = [sys.executable, __file__, "--threads", str(args.threads), "--device", args.device,
               "--child", arch, str(n), "1" if stored else "0"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    print(f"Fourier + variance of every feature map, 224 px, chunks of {CHUNK}, {args.threads} thread(s), "
          f"device {args.device}")
    print(f"{'model':<22} {'path':<14} {'images':>6} {'maps':>5} {'images/s':>9} {'peak RSS MB':>12} "
          f"{'peak GPU MB':>12}")
    for arch in MODELS:
        rows = [(run(arch, CHUNK, True), "stored maps")] + [(run(arch, n, False), "streamed") for n in args.sizes]
        for r, path in rows:
            print(f"{arch:<22} {path:<14} {r['n']:>6} {r['maps']:>5} {r['images_per_s']:>9.2f} "
                  f"{r['peak_rss_mb']:>12.0f} {r['peak_gpu_mb']:>12.0f}")
        small, large = rows[1][0], rows[-1][0]
        print(f"{arch:<22} peak RSS at {large['n']} / at {small['n']} images: "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x (goal <= 1.5x); streamed ({small['n']} images) / "
              f"stored maps ({CHUNK} images): {small['peak_rss_mb'] / rows[0][0]['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
