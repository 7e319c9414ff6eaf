"""What one block product H_bb v_b costs against a whole-network Hessian-vector product.

    python benchmarks/bench_hessian_blocks.py [--batch-size 16] [--repeats 20]

On the demo's ViT and ResNet (profiles/demo/demo.yaml sizes), one mini-batch of random
images, float32, eval mode: the seconds of a whole-network product (the graph of the
gradient kept, one backward through it: `probes.hessian.products.make_hvp`), of each
block's product (`probes.hessian.products.block_products`: the same graph, the backward
restricted to the block's parameters), and of the naive block product (the whole-network
product of v_b padded with zeros, then cut to the block). Prints, per model, each block's
product time as a ratio to the whole-network one, and the sum over blocks: what one product
in every block costs, against one whole-network product. Measured in one run, the same
process and threads; the median of `--repeats` products.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from vitprobe import models
from vitprobe.models.modes import eval_mode
from vitprobe.probes.hessian.partition import partition
from vitprobe.probes.hessian.products import block_products, double_backward_attention, make_hvp

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    demo = yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text())["models"]
    for alias in ("vit_demo", "resnet_demo"):
        torch.manual_seed(0)
        model = models.create(demo[alias]["arch"], num_classes=10, **demo[alias]["kwargs"])
        x, y = torch.randn(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,))
        blocks = partition(model)
        with eval_mode(model), double_backward_attention():
            t = time.perf_counter()
            hvp, params = make_hvp(model, x, y)
            graph_whole = time.perf_counter() - t
            n = sum(p.numel() for p in params)
            whole = median_seconds(lambda: hvp(torch.randn(n)), args.repeats)
            t = time.perf_counter()
            products = block_products(model, x, y, blocks)
            graph_blocks = time.perf_counter() - t
            offsets, at = {}, 0
            for name, p in model.named_parameters():
                offsets[name] = (at, at + p.numel())
                at += p.numel()
            rows = []
            for b in blocks:
                own = median_seconds(lambda b=b: products[b.name](torch.randn(b.size)), args.repeats)
                idx = torch.cat([torch.arange(*offsets[n]) for n in b.params])

                def naive(idx=idx):
                    v = torch.zeros(n)
                    v[idx] = torch.randn(len(idx))
                    return hvp(v)[idx]
                rows.append((b, own, median_seconds(naive, max(3, args.repeats // 4))))
        print(f"\n{alias}: {len(blocks)} blocks, {n:,} parameters, batch {args.batch_size}; whole-network product "
              f"{1e3 * whole:.2f} ms (graph {1e3 * graph_whole:.1f} ms; the blocks' shared graph "
              f"{1e3 * graph_blocks:.1f} ms)")
        print(f"  {'block':<22} {'size':>8} {'ms':>8} {'/ whole':>8} {'naive / whole':>14}")
        for b, own, nv in rows:
            print(f"  {b.name:<22} {b.size:>8,} {1e3 * own:>8.2f} {own / whole:>8.2f} {nv / whole:>14.2f}")
        total = sum(own for _, own, _ in rows)
        print(f"  one product in every block: {total / whole:.2f} whole-network products "
              f"(naive: {sum(nv for *_, nv in rows) / whole:.2f}); mean block product {total / len(rows) / whole:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
