"""Training input pipeline: device-resident batch augmentation vs a per-sample DataLoader.

On synthetic CIFAR-sized data (50,000 random uint8 32x32x3 images, 100 classes), with the
paper's augmentation (crop pad 4 + horizontal flip, then timm's RandAugment rand-m9-n2-mstd1.0
with the dataset mean as fill, Mixup 1.0 / CutMix 0.8, label smoothing 0.1), two ways:

ours        `vitprobe.data.augment.BatchAugment` on the whole uint8 set held on the device (as
            `vitprobe.training.loop` does it: a slice of a permutation, then one call per batch,
            with a device generator; `vitprobe.data.randaugment`: timm's RandAugment per image,
            batched).
DataLoader  the paper release's recipe: a Dataset of PIL images with per-sample
            RandomCrop(32, 4), RandomHorizontalFlip, timm's own
            rand_augment_transform("rand-m9-n2-mstd1.0") built by timm's
            transforms_imagenet_train as the release builds it, ToTensor, Normalize;
            num_workers=2, pin_memory=True (a no-op without an
            accelerator), persistent_workers=True; timm's Mixup (mixup 1.0, cutmix 0.8,
            switch 0.5, label smoothing 0.1) on the collated batch in the main process,
            after the copy to the device (as timm's train.py does it).

(a) input pipeline alone: augmented, normalized batches ready on the device per second,
    rounds interleaved (ours, ours without RandAugment, DataLoader, ...); before each
    DataLoader round the batches its workers prefetched while the others ran are drained.
    Also: ours with its augmentation run at 1 intra-op thread, a per-stage breakdown of ours
    and the single-process cost of the per-sample transform.
(b) training steps of ViT-Ti (patch 2) and ResNet-18 (CIFAR stem) with each pipeline (ours,
    ours with its augmentation at 1 thread, DataLoader), in chunks interleaved between them
    (each its own copy of the same initial model
    and its own AdamW): forward, soft-target CE, backward, grad-norm clip 5, AdamW step and
    loss.item(), as in `vitprobe.training.loop`. "data wait" = time from the end of one optimizer
    step to the moment the next batch is ready on the device, over the whole step time.
    The DataLoader's 2 workers compete with the model for the same cores. Paper-size models
    are slow on CPU (ViT-Ti patch 2: several s per step at batch 32), so (b) runs batch 32 and
    stops at --steps or when its time budget per model (--seconds) is spent; the step counts
    are printed.

Threads: ours runs in the main process at its intra-op thread count (--threads, default the
core count, as for the model). On a CPU shared with other busy processes, GNU OpenMP's
spin-waiting makes the many small ops of BatchAugment very slow at 2 threads; the "augment at
1 thread" rows show the same pipeline with its augmentation under torch.set_num_threads(1)
(OMP_WAIT_POLICY=passive has a similar effect).

Run: .venv/bin/python benchmarks/bench_training.py [--quick] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vitprobe import models
from vitprobe.config.load import defaults
from vitprobe.data.augment import BatchAugment, mixup_cutmix, normalize, rand_augment, random_crop_flip, soft_targets
from vitprobe.data.randaugment import fill_colour
from vitprobe.data.randaugment import rand_augment as timm_rand_augment
from vitprobe.data.registry import mean_std
from vitprobe.models.losses import nll
from vitprobe.training.loop import lr_at, make_optimizer

N_TRAIN, NUM_CLASSES = 50_000, 100
MEAN, STD = mean_std("cifar100")
AUGMENT = defaults("train", "augment")  # the paper's recipe: the config schema's defaults
TRAIN_CFG = {"optimizer": "adamw", "lr": 1.25e-4, "lr_batch_size": 96, "weight_decay": 0.05,
             "betas": (0.9, 0.999), "grad_clip": 5.0}
MODELS = {"vit_ti_cifar": "ViT-Ti (patch 2)", "resnet18_cifar": "ResNet-18"}
NUM_WORKERS = 2
TARGET_RATIO, TARGET_WAIT = 3.0, 0.05


# --------------------------------------------------------------------------- pipelines

@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """Run the block with n intra-op threads (None: unchanged)."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Ours:
    """Device-resident uint8 set + BatchAugment, batch after batch of a running permutation."""

    def __init__(self, images, labels, batch_size, device, cfg=AUGMENT, threads=None, seed=0):
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size, self.device, self.threads = batch_size, device, threads
        self.augment = BatchAugment(MEAN, STD, NUM_CLASSES, **cfg)
        self.perm_gen = torch.Generator().manual_seed(seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.perm, self.pos = None, 0

    def next(self):
        n = len(self.images)
        if self.perm is None or self.pos + self.batch_size > n:
            self.perm, self.pos = torch.randperm(n, generator=self.perm_gen), 0
        idx = self.perm[self.pos:self.pos + self.batch_size].to(self.device)
        self.pos += self.batch_size
        with intra_op_threads(self.threads):
            return self.augment(self.images[idx], self.labels[idx], self.aug_gen)

    def drain(self):
        pass

    def close(self):
        pass


class PerSampleCIFAR(Dataset):
    """CIFAR-style dataset: HWC uint8 numpy images -> PIL -> per-sample transform."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def per_sample_transform():
    """The release's CIFAR training transform (ops/datasets.py get_cifar100 with padding 4):
    timm's transforms_imagenet_train(separate=True) with its first stage replaced by
    RandomCrop(32, 4) + RandomHorizontalFlip; the second stage is timm's RandAugment."""
    from timm.data.transforms_factory import transforms_imagenet_train
    from torchvision import transforms as T
    _, secondary, final = transforms_imagenet_train(32, mean=MEAN, std=STD, color_jitter=0.0,
                                                    auto_augment="rand-m9-n2-mstd1.0", interpolation="random",
                                                    separate=True)
    return T.Compose([T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]), secondary, final])


class Loader:
    """torchvision DataLoader (2 persistent workers) + timm Mixup/CutMix in the main process."""

    def __init__(self, images, labels, batch_size, device, seed=0):
        from timm.data import Mixup
        hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
        ds = PerSampleCIFAR(hwc, labels.numpy(), per_sample_transform())
        self.loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                 num_workers=NUM_WORKERS, pin_memory=True, persistent_workers=True,
                                 generator=torch.Generator().manual_seed(seed))
        self.mixup = Mixup(mixup_alpha=AUGMENT["mixup_alpha"], cutmix_alpha=AUGMENT["cutmix_alpha"],
                           switch_prob=AUGMENT["switch_prob"], mode="batch",
                           label_smoothing=AUGMENT["label_smoothing"], num_classes=NUM_CLASSES)
        self.device, self.it = device, None

    def _batch(self):
        if self.it is None:
            self.it = self._iter()
        try:
            return next(self.it)
        except StopIteration:
            self.it = self._iter()
            return next(self.it)

    def _iter(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pin_memory ... no accelerator is found"
            return iter(self.loader)

    def next(self):
        x, y = self._batch()
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        return self.mixup(x, y)

    def drain(self):
        """Take the batches prefetched while someone else had the CPU, so that a timed round
        starts with an empty queue (workers busy, as in the steady state)."""
        prefetched = NUM_WORKERS * (self.loader.prefetch_factor or 2)
        for _ in range(prefetched):
            self._batch()

    def close(self):
        it, self.it = self.it, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- (a)

def bench_pipelines(pipes: dict, batches: int, rounds: int, warmup: int, device,
                    round_seconds: float) -> dict:
    """Interleaved rounds, each of `batches` batches per pipeline or fewer when
    `round_seconds` are spent (at least 2); returns {name: {"batches", "seconds", "rate",
    "per_round": [batches/s]}}."""
    for p in pipes.values():
        for _ in range(warmup):
            p.next()
    out = {name: {"batches": 0, "seconds": 0.0, "per_round": []} for name in pipes}
    for r in range(rounds):
        for name, p in pipes.items():
            p.drain()
            sync(device)
            t = time.perf_counter()
            n = 0
            while n < batches and (n < 2 or time.perf_counter() - t < round_seconds):
                x, y = p.next()
                sync(device)
                n += 1
            dt = time.perf_counter() - t
            o = out[name]
            o["batches"] += n
            o["seconds"] += dt
            o["per_round"].append(n / dt)
            print(f"  round {r + 1}/{rounds}  {name:<40s} {n:4d} batches {n / dt:8.2f} batches/s", flush=True)
    for o in out.values():
        o["rate"] = o["batches"] / o["seconds"]
    return out


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)


def stage_breakdown(images, labels, batch_size, threads_list, reps) -> list[tuple]:
    """Median ms per batch of each stage of BatchAugment, at each thread count."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(images), generator=g)[:batch_size]
    x8, lab = images[idx], labels[idx]
    xf = normalize(x8, MEAN, STD)
    ra = {k: v for k, v in AUGMENT["randaugment"].items() if k != "impl"}
    tv = {"num_ops": 2, "magnitude": 9, "magnitude_std": 1.0, "group_size": 8}
    stages = [
        ("index (gather the batch)", lambda: (images[idx], labels[idx])),
        ("RandAugment (timm, per image)", lambda: timm_rand_augment(x8, fill_colour(MEAN), generator=g, **ra)),
        ("[RandAugment torchvision, groups 8]", lambda: rand_augment(x8, **tv)),
        ("random crop + flip", lambda: random_crop_flip(x8, 4, True, g)),
        ("normalize", lambda: normalize(x8, MEAN, STD)),
        ("soft targets + Mixup/CutMix", lambda: mixup_cutmix(xf, soft_targets(lab, NUM_CLASSES, 0.1),
                                                             1.0, 0.8, 0.5, g)),
    ]
    rows = []
    for name, fn in stages:
        row = [name]
        for th in threads_list:
            with intra_op_threads(th):
                row.append(median_ms(fn, reps))
        rows.append(tuple(row))
    return rows


def per_sample_cost(images, n) -> float:
    """Single-process ms per image of the DataLoader's per-sample transform (PIL + ToTensor)."""
    hwc = images[:n].permute(0, 2, 3, 1).contiguous().numpy()
    tf = per_sample_transform()
    with intra_op_threads(1):  # as in a DataLoader worker
        for i in range(min(20, n)):
            tf(Image.fromarray(hwc[i]))
        t = time.perf_counter()
        for i in range(n):
            tf(Image.fromarray(hwc[i]))
        return 1000 * (time.perf_counter() - t) / n


# --------------------------------------------------------------------------- (b)

class Trainer:
    def __init__(self, model, device, batch_size, total_steps):
        cfg = dict(TRAIN_CFG, batch_size=batch_size)
        self.model, self.device, self.cfg = model.to(device).train(), device, cfg
        self.opt = make_optimizer(self.model, cfg)
        self.lr_peak = cfg["lr"] * batch_size / cfg["lr_batch_size"]
        self.total_steps, self.step_i = total_steps, 0

    def step(self, x, y):
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step_i, self.total_steps, max(1, self.total_steps // 10), self.lr_peak)
        loss = nll(self.model(x).float(), y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss is {loss.item()}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["grad_clip"])
        self.opt.step()
        self.step_i += 1
        return loss.item()


def bench_training(arch, pipes: dict, device, batch_size, max_steps, seconds, chunk, warmup) -> dict:
    """Chunks of `chunk` steps per pipeline, interleaved, until every pipeline has done
    max_steps or another round would overrun the time budget `seconds` (which includes the
    warm-up); at least one round. Every pipeline gets the same number of steps."""
    t_start = time.perf_counter()
    torch.manual_seed(0)
    base = models.create(arch, num_classes=NUM_CLASSES)
    trainers = {name: Trainer(copy.deepcopy(base), device, batch_size, max_steps + warmup) for name in pipes}
    del base
    stats = {name: {"steps": 0, "wait": 0.0, "total": 0.0, "step_times": []} for name in pipes}
    # untimed warm-up: one batch from every pipeline (first-call costs, DataLoader workers
    # started), `warmup` steps of the first copy of the model (allocator, oneDNN primitives)
    first = next(iter(pipes))
    for name, p in pipes.items():
        p.next()
    for _ in range(warmup):
        trainers[first].step(*pipes[first].next())
    t_timed, rounds = time.perf_counter(), 0
    while True:
        for name, p in pipes.items():
            p_stats, tr = stats[name], trainers[name]
            sync(device)
            t_prev = time.perf_counter()
            for _ in range(chunk):
                x, y = p.next()
                sync(device)
                t_ready = time.perf_counter()
                tr.step(x, y)
                sync(device)
                t_end = time.perf_counter()
                p_stats["wait"] += t_ready - t_prev
                p_stats["total"] += t_end - t_prev
                p_stats["step_times"].append(t_end - t_prev)
                p_stats["steps"] += 1
                t_prev = t_end
        done, rounds = min(s["steps"] for s in stats.values()), rounds + 1
        now = time.perf_counter()
        elapsed, per_round = now - t_start, (now - t_timed) / rounds
        line = "  ".join(f"{n}: {s['steps']} steps, {s['total'] / s['steps']:.2f} s/step, "
                         f"wait {100 * s['wait'] / s['total']:.1f}%" for n, s in stats.items())
        print(f"  [{arch}] {elapsed:6.1f} s  {line}", flush=True)
        if done + chunk > max_steps or elapsed + per_round > seconds:
            break
    for s in stats.values():
        s["images_per_s"] = s["steps"] * batch_size / s["total"]
        s["wait_share"] = s["wait"] / s["total"]
        s["median_step"] = statistics.median(s["step_times"])
    return stats


# --------------------------------------------------------------------------- report

def md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def yes_no(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (~3 min) to check that it works")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads of the main process (default: the number of usable cores)")
    ap.add_argument("--pipeline-batch", type=int, default=128, help="(a) batch size (default 128)")
    ap.add_argument("--pipeline-batches", type=int, default=None, help="(a) batches per round per pipeline")
    ap.add_argument("--rounds", type=int, default=None, help="(a) interleaved rounds")
    ap.add_argument("--round-seconds", type=float, default=None,
                    help="(a) a round of one pipeline stops after this many seconds (default 8, --quick 3)")
    ap.add_argument("--train-batch", type=int, default=32, help="(b) batch size (default 32)")
    ap.add_argument("--steps", type=int, default=None, help="(b) max timed steps per model and pipeline")
    ap.add_argument("--seconds", type=float, default=None,
                    help="(b) time budget per model (all pipelines and the warm-up together; default 210, "
                         "--quick 40); may stop (b) before --steps")
    ap.add_argument("--chunk", type=int, default=None, help="(b) steps per pipeline before switching")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--skip-training", action="store_true", help="only (a)")
    args = ap.parse_args(argv)
    q = args.quick
    batches = args.pipeline_batches or (8 if q else 60)
    round_seconds = args.round_seconds or (3.0 if q else 8.0)
    rounds = args.rounds or (2 if q else 3)
    max_steps = args.steps or (2 if q else 50)
    seconds = args.seconds or (40.0 if q else 210.0)
    chunk = args.chunk or 1
    warm_train = 0 if q else 1

    t_all = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or cores
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    import timm
    import torchvision

    print("# bench_training: device-resident BatchAugment vs per-sample DataLoader")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, usable cores {cores} "
          f"(os.cpu_count {os.cpu_count()}), device {device}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"timm {timm.__version__}; torch intra-op threads {torch.get_num_threads()} "
          f"(DataLoader workers: {NUM_WORKERS} processes x 1 thread, competing for the same cores); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    load0 = os.getloadavg()
    print(f"load average at start (1/5/15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}  "
          "(> cores means other processes share the CPU)")
    print(f"data: {N_TRAIN} random uint8 32x32x3 images, {NUM_CLASSES} classes (CIFAR-100 sized)")
    print(f"augmentation: {AUGMENT}")
    print(f"(a) batch {args.pipeline_batch}, {rounds} interleaved rounds of {batches} batches per pipeline "
          f"(fewer, at least 2, when a round takes {round_seconds:.0f} s)")
    if not args.skip_training:
        print(f"(b) batch {args.train_batch}, up to {max_steps} timed steps per model and pipeline, "
              f"budget {seconds:.0f} s per model (warm-up included), chunks of {chunk} step(s) alternating "
              f"between the pipelines, {warm_train} untimed warm-up step; AdamW {TRAIN_CFG}")
    print(flush=True)

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_TRAIN, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (N_TRAIN,), generator=gen)

    # ---------------------------------------------------------------- (a)
    print("## (a) input pipeline alone", flush=True)
    B = args.pipeline_batch
    loader = Loader(images, labels, B, device)
    pipes = {
        "ours": Ours(images, labels, B, device),
        "ours, augment at 1 thread": Ours(images, labels, B, device, threads=1),
        "ours without RandAugment": Ours(images, labels, B, device, cfg=dict(AUGMENT, randaugment=None)),
        "ours without RandAugment, at 1 thread": Ours(images, labels, B, device, threads=1,
                                                      cfg=dict(AUGMENT, randaugment=None)),
        "DataLoader": loader,
    }
    res_a = bench_pipelines(pipes, batches, rounds, warmup=2, device=device, round_seconds=round_seconds)
    loader.close()
    dl_rate = res_a["DataLoader"]["rate"]
    print()
    print(f"{'pipeline':<40s} {'batches':>7s} {'batches/s':>10s} {'images/s':>10s} {'ms/batch':>9s} "
          f"{'vs DataLoader':>14s}  per round")
    for name, o in res_a.items():
        pr = " ".join(f"{v:.1f}" for v in o["per_round"])
        print(f"{name:<40s} {o['batches']:7d} {o['rate']:10.2f} {o['rate'] * B:10.0f} {1000 / o['rate']:9.1f} "
              f"{o['rate'] / dl_rate:13.2f}x  [{pr}]")
    round_ratios = [a / b for a, b in zip(res_a["ours"]["per_round"], res_a["DataLoader"]["per_round"])]
    print(f"ours/DataLoader per round: {', '.join(f'{r:.2f}' for r in round_ratios)}")

    breakdown_threads = sorted({threads, 1}, reverse=True)
    rows = stage_breakdown(images, labels, B, breakdown_threads, reps=5 if q else 9)
    print(f"\nours, median ms per batch of {B} by stage (intra-op threads {' / '.join(map(str, breakdown_threads))}):")
    for row in rows:
        print(f"  {row[0]:<34s} " + " / ".join(f"{v:7.1f}" for v in row[1:]))
    ms_img = per_sample_cost(images, 200 if q else 1000)
    print(f"DataLoader per-sample transform, one process, 1 thread: {ms_img:.3f} ms/image -> "
          f"{ms_img * B:.0f} ms per batch of {B} in one worker; {NUM_WORKERS} workers on free cores "
          f"could give at most ~{1000 * NUM_WORKERS / (ms_img * B):.1f} batches/s", flush=True)

    # ---------------------------------------------------------------- (b)
    res_b = {}
    if not args.skip_training:
        print("\n## (b) training steps", flush=True)
        Bt = args.train_batch
        for arch in args.models:
            loader = Loader(images, labels, Bt, device)
            pipes = {"ours": Ours(images, labels, Bt, device),
                     "ours, augment at 1 thread": Ours(images, labels, Bt, device, threads=1),
                     "DataLoader": loader}
            res_b[arch] = bench_training(arch, pipes, device, Bt, max_steps, seconds, chunk, warm_train)
            loader.close()
        print()
        print(f"{'model':<18s} {'pipeline':<26s} {'steps':>5s} {'s/step (mean)':>13s} {'s/step (median)':>15s} "
              f"{'images/s':>9s} {'data wait':>10s} {'wait ms/step':>12s}")
        for arch, st in res_b.items():
            for name, s in st.items():
                print(f"{MODELS[arch]:<18s} {name:<26s} {s['steps']:5d} {s['total'] / s['steps']:13.3f} "
                      f"{s['median_step']:15.3f} {s['images_per_s']:9.2f} {100 * s['wait_share']:9.2f}% "
                      f"{1000 * s['wait'] / s['steps']:12.1f}")

    # ---------------------------------------------------------------- summary
    load1 = os.getloadavg()
    minutes = (time.perf_counter() - t_all) / 60
    ratio = res_a["ours"]["rate"] / dl_rate
    print(f"\nload average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; total time {minutes:.1f} min")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print("\n## Markdown summary\n")
    print(f"Measured on {cores} CPU cores, torch {torch.__version__}, device {device}, {threads} intra-op "
          f"threads; 2 DataLoader workers on the same cores; load average {load0[0]:.1f} -> {load1[0]:.1f}. "
          f"(a) batch {B}, {rounds} interleaved rounds per pipeline, batches timed: "
          + ", ".join(f"{n} {o['batches']}" for n, o in res_a.items()) + ".", end="")
    if res_b:
        steps = ", ".join(f"{MODELS[a]} {st['ours']['steps']}" for a, st in res_b.items())
        print(f" (b) batch {args.train_batch}, timed steps per pipeline: {steps} "
              f"(+{warm_train} untimed warm-up step), in alternating chunks of {chunk}.")
    else:
        print()
    print()
    rows = []
    rows.append([f"(a) augmented batches/s (batch {B})", f"{res_a['ours']['rate']:.2f}", f"{dl_rate:.2f}",
                 f"{ratio:.2f}x", f"ours >= {TARGET_RATIO:.0f}x", yes_no(ratio >= TARGET_RATIO)])
    for name in ("ours, augment at 1 thread", "ours without RandAugment", "ours without RandAugment, at 1 thread"):
        r = res_a[name]["rate"]
        rows.append([f"(a) {name}", f"{r:.2f}", f"{dl_rate:.2f}", f"{r / dl_rate:.2f}x", "context", ""])
    for arch, st in res_b.items():
        o, d = st["ours"], st["DataLoader"]
        rows.append([f"(b) {MODELS[arch]} images/s (batch {args.train_batch})", f"{o['images_per_s']:.2f}",
                     f"{d['images_per_s']:.2f}", f"{o['images_per_s'] / d['images_per_s']:.2f}x", "", ""])
        rows.append([f"(b) {MODELS[arch]} data wait / step time", f"{100 * o['wait_share']:.2f} %",
                     f"{100 * d['wait_share']:.2f} %", "", f"ours < {100 * TARGET_WAIT:.0f} %",
                     yes_no(o["wait_share"] < TARGET_WAIT)])
        o1 = st["ours, augment at 1 thread"]
        rows.append([f"(b) {MODELS[arch]}, ours augment at 1 thread: images/s; data wait",
                     f"{o1['images_per_s']:.2f}; {100 * o1['wait_share']:.2f} %", "",
                     f"{o1['images_per_s'] / d['images_per_s']:.2f}x", "context", ""])
    print(md_table(["measurement", "ours (BatchAugment, device-resident)", "DataLoader (per-sample, 2 workers)",
                    "ours / DataLoader", "target", "met"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
