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
end_to_end   the demo's ResNet and ViT trained 2 epochs by the CLI (`vitprobe train --device
             cuda`, torch.compile on) on the bundled Fashion-MNIST subset, then every probe of
             the demo by the CLI on the checkpoint; the float32 (`exact`) probes also on the
             CPU: the largest relative difference of each table's numbers from the CPU's (their
             inputs are drawn on the CPU and TF32 is off, so only rounding differs).
paper_pool   the paper config's Hessian pool per checkpoint (every mini-batch of 16 of
             CIFAR's 50 000 training images, k 5, trace 2 samples), from the measured seconds
             per mini-batch of the default method: hours per checkpoint, and in epochs of
             training at the measured img/s.

`--smoke` runs the same code on the CPU (`device: rehearse`) at tiny sizes (models smaller
than the demo's, 2-3 steps, 2 mini-batches of 4 images, 2 images at 224 px) in about two
minutes; CI runs it (tests/test_gpu_check.py), so the script does not rot. Without `--smoke`
it wants CUDA. The JSON is rewritten after every part, so a run cut short keeps what it
measured; `--budget-s` (default 420) stops starting new measurements once spent, and each
part says what it skipped.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vitprobe import models, results
from vitprobe.analysis.featuremaps import map_statistics
from vitprobe.config.load import validate
from vitprobe.data.augment import BatchAugment, normalize
from vitprobe.data.randaugment import apply_op, draw, rand_augment
from vitprobe.data.registry import DATASETS
from vitprobe.device import resolve
from vitprobe.models.losses import nll
from vitprobe.probes.fourier.measure import relative_log_amplitude
from vitprobe.probes.hessian import measure as hessian
from vitprobe.probes.variance.measure import feature_map_variance
from vitprobe.training.loop import make_optimizer

REPO = Path(__file__).resolve().parents[1]
PAPER_IMG_S = {"resnet50_cifar": 320, "vit_ti_cifar": 434}  # as issue 25 quotes the paper: T4-class GPU
TRAIN_MODELS = ("resnet18_cifar", "resnet50_cifar", "vit_ti_cifar", "vit_s_cifar")
COMPILED = ("resnet50_cifar", "vit_ti_cifar")
HESSIAN_MODELS = DEFAULT_HESSIAN_MODELS = ("vit_ti_cifar", "resnet50_cifar")  # --hessian-models sets the first
# Columns of timings and provenance, not results: left out of the comparisons.
IGNORED = {c.name for c in results.PROVENANCE_COLUMNS} | {
    c.name for cols in results.TABLES.values() for c in cols if c.unit in ("s", "1/s")}
CIFAR = DATASETS["cifar100"]
TRAIN_IMAGES = CIFAR.train_per_class * CIFAR.num_classes  # 50 000
# The smoke's stand-ins: the demo's sizes (profiles/demo/demo.yaml), cut further.
SMOKE_KWARGS = {"resnet18_cifar": {"layers": [1, 1, 1, 1], "widths": [8, 16, 16, 32]},
                "resnet50_cifar": {"layers": [1, 1, 1, 1], "widths": [8, 8, 16, 16]},
                "vit_ti_cifar": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
                "vit_s_cifar": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}}


class Clock:
    """The run's time budget: `left()` seconds before no new measurement starts."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


CLOCK = Clock(float("inf"))


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
        if CLOCK.left() <= 0:
            rows.append({"model": arch, "method": method, "batches_at_once": b, "hvp": hvp, "skipped": "out of time"})
            continue
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
        rate = next((r["mini_batches_per_s"] for r in rows if "skipped" not in r and r["model"] == arch
                     and r["method"] == method
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


# ---- end_to_end --------------------------------------------------------------------------
E2E_MODELS = ("resnet_demo", "vit_demo")


def _max_rel_diff(a, b) -> float:
    """The largest |a - b| / max(|b|, 1e-6 * max|b|) over the numeric cells two tables share."""
    import numpy as np
    cols = [c for c in a.select_dtypes("number").columns if c in b.columns and c not in IGNORED]
    x, y = a[cols].to_numpy(dtype=float), b[cols].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return 0.0
    scale = max(float(np.abs(y[ok]).max()) * 1e-6, 1e-30)
    return float((np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), scale)).max())


def end_to_end(device_name: str, smoke: bool) -> dict:
    """Train the demo's ResNet and ViT by the CLI on `device_name`, then every demo probe by
    the CLI; the exact probes again on the CPU for comparison."""
    import pandas as pd

    from vitprobe import catalog
    from vitprobe.cli import main as cli

    config = yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text())
    config["experiments"] = {"x": {"models": list(E2E_MODELS)}}
    config["figures"] = {}
    epochs = 2
    config["train"].update(epochs=epochs, checkpoint_epochs=[epochs], compile=True)
    probes = {p: {**s, "epochs": [epochs]} for p, s in config["probes"].items() if p != "corruption"}
    probes["hessian_blocks"].pop("experiments", None)  # the demo's names experiments this config replaces
    if smoke:
        probes["hessian"].update(n_batches=2, batch_size=4, trace_samples=2)
        probes["hessian_blocks"].update(n_batches=2, batch_size=4, k=2, density_steps=4, trace_products=3)
        for p in ("fourier", "variance"):
            probes[p]["n_images"] = 8
        probes["robustness"]["n_images"] = 16
        probes["landscape"] = {**probes.get("landscape", {}), "n_batches": 1, "batch_size": 8, "points_1d": 3,
                               "points_2d": 3, "epochs": [epochs]}
        config["experiments"]["x"]["fractions"] = ["1/16"]  # 312 training images
    config["probes"] = probes
    plan = validate(config)
    out: dict = {"train": [], "probes": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for run in plan.runs:
            if CLOCK.left() <= 0:
                out["train"].append({"model": run.model, "skipped": "out of time"})
                continue
            ckpt = tmp / f"{run.model}.pt"
            start = time.perf_counter()
            rc = cli(["train", "--spec", json.dumps(plan.train_spec(run)), "--device", device_name, "--no-progress",
                      "--state-dir", str(tmp / f"{run.model}-state"), "--checkpoint", f"{epochs}={ckpt}",
                      "--log", str(tmp / f"{run.model}-log.parquet")])
            log = pd.read_parquet(tmp / f"{run.model}-log.parquet") if rc == 0 else None
            out["train"].append({"model": run.model, "rc": rc, "seconds": time.perf_counter() - start,
                                 "test_error_last": float(log["test_error"].iloc[-1]) if log is not None else None})
            if rc != 0:
                continue
            for probe in probes:
                if CLOCK.left() <= 0:
                    out["probes"].append({"model": run.model, "probe": probe, "skipped": "out of time"})
                    continue
                spec = json.dumps(plan.probe_spec(run, probe))

                def one(device, tag):
                    outs = {t: tmp / f"{run.model}-{probe}-{tag}-{t}.parquet" for t in catalog.tables_of(probe)}
                    t0 = time.perf_counter()
                    rc = cli([probe, "--spec", spec, "--device", device, "--checkpoint", str(ckpt),
                              *[a for t, p in outs.items() for a in ("--out", f"{t}={p}")]])
                    tables = {t: pd.read_parquet(p) for t, p in outs.items()} if rc == 0 else {}
                    return rc, time.perf_counter() - t0, tables

                rc, seconds, tables = one(device_name, "dev")
                row = {"model": run.model, "probe": probe, "rc": rc, "seconds": seconds,
                       "rows": {t: len(df) for t, df in tables.items()}}
                if rc == 0 and catalog.PROBES[probe].exact:
                    _, row["cpu_seconds"], cpu = one("cpu", "cpu")
                    row["max_rel_diff_vs_cpu"] = {t: _max_rel_diff(tables[t], cpu[t]) for t in tables if t in cpu}
                out["probes"].append(row)
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


E2E_KEYS = ("step", "model", "probe", "rc", "seconds", "cpu_seconds", "test_error_last", "max_rel_diff_vs_cpu",
            "skipped")


def _e2e_rows(e2e: dict) -> list[dict]:
    """One row per training run and probe job, the largest difference over a probe's tables."""
    rows = []
    for step, r in [("train", r) for r in e2e["train"]] + [("probe", r) for r in e2e["probes"]]:
        flat = {k: (max(v.values(), default=0.0) if isinstance(v, dict) else v) for k, v in r.items()}
        rows.append({k: flat.get(k, step if k == "step" else "") for k in E2E_KEYS})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (rehearse device), about two minutes")
    ap.add_argument("--out", type=Path, help="write the results as JSON here (after every part)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="seconds after which no new measurement starts (default 420)")
    ap.add_argument("--parts", help="comma-separated parts to run, in their order (default: all)")
    ap.add_argument("--hessian-models", default=",".join(DEFAULT_HESSIAN_MODELS),
                    help=f"models of the hessian and paper_pool parts (default {','.join(DEFAULT_HESSIAN_MODELS)})")
    args = ap.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        ap.error("no CUDA device here; --smoke runs the same code on the CPU")
    global CLOCK, HESSIAN_MODELS
    CLOCK = Clock(args.budget_s)
    dev = resolve("rehearse" if args.smoke else "cuda")
    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    config = paper_config()
    cfg, pool_cfg = config["train"], config["probes"]["hessian"]
    name = torch.cuda.get_device_name() if dev.is_cuda else f"cpu ({platform.processor() or platform.machine()})"
    started = time.time()
    result = {"device": name, "smoke": args.smoke, "date": datetime.date.today().isoformat(),
              "torch": torch.__version__}

    def save():
        result["seconds"] = time.time() - started
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    smoke, dev_name = args.smoke, "rehearse" if args.smoke else "cuda"
    # In the order of their worth on a first GPU day: a part that raises is recorded and the
    # next one runs; once the budget is spent the rest are skipped.
    parts = [
        ("end_to_end", lambda: end_to_end(dev_name, smoke),
         "the demo's runs and probes by the CLI (exact probes against the CPU)", _e2e_rows),
        ("train", lambda: [train_throughput(a, c, cfg, dev, smoke) for a in TRAIN_MODELS
                           for c in ((False, True) if a in COMPILED else (False,))],
         f"training throughput on {name} (img/s; paper: as issue 25 quotes it)", list),
        ("hessian", lambda: [r for a in HESSIAN_MODELS for r in hessian_rates(a, dev, smoke, cfg)],
         f"Hessian top-5, batch {4 if smoke else 16}", list),
        ("randaugment", lambda: randaugment_equality(dev), "RandAugment on the device vs the CPU ops on its draws",
         lambda r: [r]),
        ("featuremaps", lambda: [featuremap_rate(a, dev, smoke) for a in ("resnet50", "vit_tiny_patch16_224")],
         "feature-map statistics at 224 px", list),
        ("paper_pool", lambda: paper_pool(result.get("hessian", []), result.get("train", []), cfg, pool_cfg, dev,
                                          smoke),
         "the paper's Hessian pool per checkpoint", lambda r: [{"model": k, **v} for k, v in r.items()]),
    ]
    wanted = args.parts.split(",") if args.parts else [p[0] for p in parts]
    unknown = set(wanted) - {p[0] for p in parts}
    if unknown:
        ap.error(f"unknown parts {', '.join(sorted(unknown))}; allowed: {', '.join(p[0] for p in parts)}")
    HESSIAN_MODELS = tuple(args.hessian_models.split(","))
    failed = []
    for key, measure, title, rows in (p for p in parts if p[0] in wanted):
        if CLOCK.left() <= 0:
            result[key] = {"skipped": "out of time"}
            print(f"\n{key}: skipped, out of time")
            continue
        try:
            result[key] = measure()
        except Exception as e:  # noqa: BLE001 (one GPU session: keep measuring the other parts)
            import traceback
            traceback.print_exc()
            result[key] = {"error": f"{type(e).__name__}: {e}"}
            failed.append(key)
            print(f"\n{key}: failed, {result[key]['error']}")
        else:
            _table(title, rows(result[key]))
        save()
    print(f"\n{result['seconds']:.0f} s in all" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
