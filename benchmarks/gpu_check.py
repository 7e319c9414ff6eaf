"""One command that measures a GPU for vitprobe: what to run the first time one is at hand.

    python benchmarks/gpu_check.py [--smoke] [--out FILE.json]

Parts (one top-level JSON key each, with the device's name under "device"):

train        training img/s of ResNet-18/50 and ViT-Ti/S (CIFAR stems, 32 px, 100 classes) at the
             paper's recipe from config.yaml (its batch size, AdamW, the uint8 data on the
             device, crop + flip + timm's RandAugment + Mixup/CutMix as `BatchAugment`, bf16
             autocast, channels_last), torch.compile off and, for ResNet-50 and ViT-Ti, on;
             peak memory; beside the throughput figures issue 25 quotes for the paper
             (ResNet-50 about 320 img/s, ViT-Ti about 434 img/s on a T4-class GPU).
hessian      Hessian top-5 (batch 16, float32, eval mode, the probe's `compute`): mini-batches
             per second and HVPs per mini-batch of ViT-Ti and ResNet-50, `lanczos` vs `block`
             at batches_at_once 1, 8, 16, 32, double backward vs forward-over-reverse: the
             numbers that settle `batches_at_once: auto` and the default method.
featuremaps  Fourier + variance statistics of every feature map (`map_statistics`, chunks of 16)
             at 224 px on timm's ResNet-50 and ViT-Ti: images/s.
randaugment  timm's RandAugment on the GPU against the CPU ops applied with the same draws
             (drawn on the GPU): images equal bit for bit, and the largest difference.
paper_pool   the paper config's Hessian pool per checkpoint (every mini-batch of 16 of
             CIFAR's 50 000 training images, k 5, trace 2 samples), from the measured seconds
             per mini-batch of the default method: hours per checkpoint, and in epochs of
             training at the measured img/s.

`--smoke` runs the same code on the CPU (`device: rehearse`) at tiny sizes (models smaller
than the demo's, 2-3 steps, 2 mini-batches of 4 images, 2 images at 224 px) in about two
minutes; CI runs it (tests/test_gpu_check.py), so the script does not rot. Without `--smoke`
it wants CUDA; it is sized for at most 8 minutes on one GPU (not yet timed on one).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch
import yaml

from vitprobe import models
from vitprobe.analysis.featuremaps import map_statistics
from vitprobe.config.load import validate
from vitprobe.data.augment import BatchAugment, normalize
from vitprobe.data.randaugment import apply_op, draw, rand_augment
from vitprobe.data.registry import DATASETS
from vitprobe.device import resolve
from vitprobe.models.losses import nll
from vitprobe.probes import hessian
from vitprobe.probes.fourier import relative_log_amplitude
from vitprobe.probes.variance import feature_map_variance
from vitprobe.training.loop import make_optimizer

REPO = Path(__file__).resolve().parents[1]
PAPER_IMG_S = {"resnet50_cifar": 320, "vit_ti_cifar": 434}  # as issue 25 quotes the paper: T4-class GPU
TRAIN_MODELS = ("resnet18_cifar", "resnet50_cifar", "vit_ti_cifar", "vit_s_cifar")
COMPILED = ("resnet50_cifar", "vit_ti_cifar")
HESSIAN_MODELS = ("vit_ti_cifar", "resnet50_cifar")
CIFAR = DATASETS["cifar100"]
TRAIN_IMAGES = CIFAR.train_per_class * CIFAR.num_classes  # 50 000
# The smoke's stand-ins: the demo's sizes (profiles/demo/demo.yaml), cut further.
SMOKE_KWARGS = {"resnet18_cifar": {"layers": [1, 1, 1, 1], "widths": [8, 16, 16, 32]},
                "resnet50_cifar": {"layers": [1, 1, 1, 1], "widths": [8, 8, 16, 16]},
                "vit_ti_cifar": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
                "vit_s_cifar": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}}


def paper_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(copy.deepcopy(config))
    return config


def sync(dev) -> None:
    if dev.is_cuda:
        torch.cuda.synchronize()


def peak_mb(dev) -> float:
    if dev.is_cuda:
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS


def model(arch: str, smoke: bool, num_classes: int = 100):
    return models.create(arch, num_classes=num_classes, **(SMOKE_KWARGS[arch] if smoke else {}))


# ---- train -------------------------------------------------------------------------------
def train_throughput(arch: str, compiled: bool, cfg: dict, dev, smoke: bool) -> dict:
    """img/s over `steps` training steps after `warmup` (compilation included in the warmup)."""
    torch.manual_seed(0)
    batch = 8 if smoke else cfg["batch_size"]
    warmup, steps = (1, 2) if smoke else (5, 30)
    net = dev.prepare_model(model(arch, smoke))
    optimizer = make_optimizer(net, cfg)
    step_model = torch.compile(net, backend=dev.compile) if compiled else net
    mean, std = CIFAR.mean, CIFAR.std
    augment = BatchAugment(mean, std, 100, **cfg["augment"])
    gen = torch.Generator(device=dev.torch_device).manual_seed(1)
    images = torch.randint(0, 256, (batch * 4, 3, 32, 32), dtype=torch.uint8, device=dev.torch_device)
    labels = torch.randint(0, 100, (batch * 4,), device=dev.torch_device)
    if dev.is_cuda:
        torch.cuda.reset_peak_memory_stats()

    def step(i):
        idx = torch.arange(i % 4 * batch, (i % 4 + 1) * batch, device=dev.torch_device)
        with dev.small_ops():
            x, y = augment(images[idx], labels[idx], gen)
        with dev.autocast():
            out = step_model(dev.prepare_input(x))
        loss = nll(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    start = time.perf_counter()
    for i in range(warmup):
        step(i)
    sync(dev)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    float(loss)
    sync(dev)
    seconds = time.perf_counter() - start
    return {"model": arch, "compile": compiled, "batch_size": batch, "steps": steps, "img_s": batch * steps / seconds,
            "warmup_s": warm_s, "peak_mb": peak_mb(dev), "paper_img_s": PAPER_IMG_S.get(arch)}


# ---- hessian -----------------------------------------------------------------------------
def hessian_rates(arch: str, dev, smoke: bool, cfg: dict) -> list[dict]:
    torch.manual_seed(0)
    net = model(arch, smoke).to(dev.torch_device).eval()
    mean, std = CIFAR.mean, CIFAR.std
    augment = BatchAugment(mean, std, 100, **cfg["augment"])
    gen = torch.Generator(device=dev.torch_device).manual_seed(2)
    at_once = (1, 2) if smoke else (1, 8, 16, 32)
    n_batches, size = (2, 4) if smoke else (32, 16)
    raw = torch.randint(0, 256, (n_batches * size, 3, 32, 32), dtype=torch.uint8, device=dev.torch_device)
    labels = torch.randint(0, 100, (n_batches * size,), device=dev.torch_device)
    batches = [augment(raw[i * size:(i + 1) * size], labels[i * size:(i + 1) * size], gen) for i in range(n_batches)]
    settings = [("lanczos", 1, "double_backward")] + [("block", b, h) for b in at_once
                                                      for h in ("double_backward", "forward_over_reverse")]
    rows = []
    for method, b, hvp in settings:
        use = batches[:max(b, 2 if smoke else 4)]
        sync(dev)
        start = time.perf_counter()
        eig, _ = hessian.compute(net, use, k=5, method=method, batches_at_once=b, hvp=hvp)
        sync(dev)
        seconds = time.perf_counter() - start
        rows.append({"model": arch, "method": method, "batches_at_once": b, "hvp": hvp, "mini_batches": len(use),
                     "mini_batches_per_s": len(use) / seconds,
                     "hvps_per_mini_batch": float(eig.groupby("batch")["n_hvp"].first().mean())})
    return rows


def paper_pool(rows: list[dict], train_rows: list[dict], cfg: dict, pool_cfg: dict, dev, smoke: bool) -> dict:
    """Hours of the paper config's pool per checkpoint, from the default method's rate with
    the trace's products (trace_samples HVPs per mini-batch) measured on top."""
    out = {}
    method, hvp = pool_cfg["method"], pool_cfg["hvp"]
    b = 1 if method == "lanczos" else hessian.resolve_batches_at_once(pool_cfg["batches_at_once"], dev)
    n_batches = TRAIN_IMAGES // pool_cfg["batch_size"]
    for arch in HESSIAN_MODELS:
        net = model(arch, smoke).to(dev.torch_device).eval()
        size = 4 if smoke else pool_cfg["batch_size"]
        x = torch.randn(size, 3, 32, 32, device=dev.torch_device)
        y = torch.randint(0, 100, (size,), device=dev.torch_device)
        sync(dev)
        start = time.perf_counter()
        hessian.compute(net, [(x, y)], k=1, method="lanczos", trace_samples=pool_cfg["trace_samples"])
        sync(dev)
        with_trace = time.perf_counter() - start
        start = time.perf_counter()
        hessian.compute(net, [(x, y)], k=1, method="lanczos")
        sync(dev)
        trace_s = max(with_trace - (time.perf_counter() - start), 0.0)
        rate = next((r["mini_batches_per_s"] for r in rows if r["model"] == arch and r["method"] == method
                     and r["batches_at_once"] == b and r["hvp"] == hvp), None)
        if rate is None:
            continue
        seconds = n_batches * (1 / rate + trace_s)
        train = next((r for r in train_rows if r["model"] == arch and not r["compile"]), None)
        epoch_s = TRAIN_IMAGES / train["img_s"] if train else None
        out[arch] = {"method": method, "batches_at_once": b, "mini_batches": n_batches,
                     "seconds_per_mini_batch": 1 / rate + trace_s, "hours_per_checkpoint": seconds / 3600,
                     "training_epochs_equivalent": seconds / epoch_s if epoch_s else None,
                     "of_training_run": seconds / (epoch_s * cfg["epochs"]) if epoch_s else None}
    return out


# ---- featuremaps ---------------------------------------------------------------------------
def featuremap_rate(arch: str, dev, smoke: bool) -> dict:
    net = models.create_any(arch).eval().to(dev.torch_device)
    n, chunk = (2, 2) if smoke else (64, 16)
    stats = {"f": lambda t: relative_log_amplitude(t).cpu().numpy(), "v": feature_map_variance}
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    sync(dev)
    start = time.perf_counter()
    for i in range(0, n, chunk):
        x = torch.randint(0, 256, (chunk, 3, 224, 224), dtype=torch.uint8, device=dev.torch_device)
        maps = list(map_statistics(net, normalize(x, mean, std), stats))
    sync(dev)
    seconds = time.perf_counter() - start
    return {"model": arch, "images": n, "maps": len(maps), "images_per_s": n / seconds}


# ---- randaugment ---------------------------------------------------------------------------
def randaugment_equality(dev) -> dict:
    """The device's RandAugment against the CPU ops applied with its own draws."""
    gen = torch.Generator(device=dev.torch_device).manual_seed(5)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    fill = (129, 124, 112)
    out = rand_augment(images.to(dev.torch_device), fill, generator=gen).cpu()
    d = draw(len(images), 2, 9, 1.0, 0.5, generator=torch.Generator(device=dev.torch_device).manual_seed(5),
             device=dev.torch_device)
    ref = images
    for k in range(2):
        ref = apply_op(ref, d.op[k].cpu(), d.magnitude[k].cpu(), d.negate[k].cpu(), d.bicubic[k].cpu(), fill,
                       active=d.apply[k].cpu())
    same = (out == ref).flatten(1).all(1)
    return {"compared_on": dev.torch_device.type, "images": len(images), "images_equal": int(same.sum()),
            "max_abs_diff": int((out.int() - ref.int()).abs().max()),
            "ops_of_differing_images": sorted({int(o) for k in range(2) for o in d.op[k][~same.to(d.op.device)]
                                               .tolist()})}


# ---- main ---------------------------------------------------------------------------------
def _table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (none)")
        return
    keys = list(rows[0])
    print("  " + " | ".join(keys))
    for r in rows:
        print("  " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (rehearse device), about two minutes")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        ap.error("no CUDA device here; --smoke runs the same code on the CPU")
    dev = resolve("rehearse" if args.smoke else "cuda")
    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    config = paper_config()
    cfg, pool_cfg = config["train"], config["probes"]["hessian"]
    name = torch.cuda.get_device_name() if dev.is_cuda else f"cpu ({platform.processor() or platform.machine()})"
    started = time.time()
    result = {"device": name, "smoke": args.smoke, "date": datetime.date.today().isoformat(),
              "torch": torch.__version__}

    result["train"] = [train_throughput(a, c, cfg, dev, args.smoke) for a in TRAIN_MODELS
                       for c in ((False, True) if a in COMPILED else (False,))]
    _table(f"training throughput on {name} (img/s; paper: as issue 25 quotes it)", result["train"])
    result["hessian"] = [r for a in HESSIAN_MODELS for r in hessian_rates(a, dev, args.smoke, cfg)]
    _table(f"Hessian top-5, batch {4 if args.smoke else 16}", result["hessian"])
    result["featuremaps"] = [featuremap_rate(a, dev, args.smoke) for a in ("resnet50", "vit_tiny_patch16_224")]
    _table("feature-map statistics at 224 px", result["featuremaps"])
    result["randaugment"] = randaugment_equality(dev)
    _table("RandAugment on the device vs the CPU ops on its draws", [result["randaugment"]])
    result["paper_pool"] = paper_pool(result["hessian"], result["train"], cfg, pool_cfg, dev, args.smoke)
    _table("the paper's Hessian pool per checkpoint", [{"model": k, **v} for k, v in result["paper_pool"].items()])
    result["seconds"] = time.time() - started
    print(f"\n{result['seconds']:.0f} s in all")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
