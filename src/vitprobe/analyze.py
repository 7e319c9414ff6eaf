"""Probe runners: checkpoint + spec -> one tidy per-run, per-checkpoint Parquet table.
The math lives in `vitprobe.probes`; this module only feeds it data and writes rows.

Every runner logs to stderr (a Snakemake job's log file): a start line saying what it
computes, a progress bar over its unit of work and a result line with the headline numbers
and the paths written, the lines prefixed `[<run id> e<checkpoint epoch>] <probe>: `."""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vitprobe import results
from vitprobe.augment import BatchAugment
from vitprobe.device import Device
from vitprobe.errors import VitprobeError
from vitprobe.grid import Run
from vitprobe.imagefolder import TensorSample
from vitprobe.probes import evaluate
from vitprobe.runtime import load_model, mean_std, probe_images, test_split, train_hash, training_split, weights_label


def progress(iterable, total: int | None = None, desc: str | None = None):
    """Yield the items of `iterable` under a tqdm bar on stderr (`total` defaults to its len),
    an item counted once its work is done. Off a terminal (a log file) it redraws at most
    every 30 s, so a log holds the first (0/n) and last (n/n) line and a few between, as in
    training; a line logged meanwhile (`tqdm.write`) redraws it with the current count."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0) as bar:
        for item in iterable:
            yield item
            bar.update()


class _Log:
    """One probe job's stderr lines, prefixed `[<run id> e<epoch>] <probe>: `, and its bars."""

    def __init__(self, probe: str, spec: dict, payload: dict):
        self.prefix = f"[{Run(**spec['run']).id} e{payload['epoch']}] {probe}: "

    def __call__(self, message: str) -> None:
        tqdm.write(self.prefix + message, file=sys.stderr)  # clears an open bar, redraws it below

    def bar(self, what: str, total: int | None = None):
        """A `progress` for the iterable of `what` (a callable wrapping an iterable, as the
        `progress` parameter of the `vitprobe.probes` functions wants)."""
        return functools.partial(progress, total=total, desc=self.prefix + what)


def _paths(*paths) -> str:
    return ", ".join(map(str, paths))


def augmented_batches(spec: dict, batches, batch_size: int, seed: int, device: Device, split=None):
    """Mini-batches of augmented training images with soft targets (the training augmentation:
    crop/flip, RandAugment, Mixup/CutMix, label smoothing), batch b for each b of `batches` (a
    range, or an int n for range(n)). Batch b is images b·batch_size .. (b+1)·batch_size − 1
    of one seeded permutation of the training set (disjoint batches while they fit; beyond,
    further permutations follow), augmented with generators seeded by (seed, b): a batch is
    the same whichever range it is drawn in (the shards of a job draw disjoint ranges)."""
    batches = range(batches) if isinstance(batches, int) else batches
    split = split if split is not None else training_split(spec)
    mean, std = mean_std(spec)
    augment = BatchAugment(mean, std, split.num_classes, **spec["train"]["augment"])
    gen = torch.Generator().manual_seed(seed)
    needed = (max(batches, default=-1) + 1) * batch_size
    perm = torch.cat([torch.randperm(len(split.labels), generator=gen)
                      for _ in range(max(1, -(-needed // len(split.labels))))])
    for b in batches:
        idx = perm[b * batch_size:(b + 1) * batch_size]
        aug_gen = torch.Generator(device=device.torch_device).manual_seed(_batch_seed(seed, b))
        yield augment(split.images[idx].to(device.torch_device), split.labels[idx].to(device.torch_device), aug_gen)


def _batch_seed(seed: int, batch: int) -> int:
    return (seed + 1) * 1_000_003 + batch


def _write(df: pd.DataFrame, table: str, spec: dict, payload: dict, out) -> pd.DataFrame:
    results.write_run_table(df, table, out, run=spec["run"], epoch=payload["epoch"], config_hash=train_hash(spec),
                            weights=weights_label(spec))
    return df


def hessian_batch_count(probe: dict, n_train: int) -> int:
    """Mini-batches of a Hessian job: `n_batches`, or with `n_batches: all` every whole
    mini-batch of the run's training set (n_train // batch_size)."""
    if probe["n_batches"] != "all":
        return int(probe["n_batches"])
    if n_train < probe["batch_size"]:
        raise VitprobeError(f"probes.hessian.n_batches: all gives no mini-batch: the run's training set has "
                            f"{n_train} images, fewer than probes.hessian.batch_size ({probe['batch_size']})")
    return n_train // probe["batch_size"]


def shard_range(n_batches: int, shard: tuple[int, int] | None) -> range:
    """Mini-batch indices of shard i of s: [i·n // s, (i+1)·n // s), disjoint, covering 0..n-1."""
    if shard is None:
        return range(n_batches)
    i, s = shard
    if not 0 <= i < s:
        raise VitprobeError(f"--shard {i}/{s}: the shard index must be in 0..{s - 1}")
    if s > n_batches:
        raise VitprobeError(f"probes.hessian.shards: {s} shards exceed the {n_batches} mini-batches; allowed: "
                            f"1..{n_batches}")
    return range(i * n_batches // s, (i + 1) * n_batches // s)


def _solve(model, batches, indices, p, wd, device: Device, log):
    """(batch index, values, info) for every mini-batch, `batches_at_once` at a time with the
    block solver (warm-started lane by lane from the previous group), else one at a time."""
    from vitprobe.probes.hessian import top_eigenvalues
    from vitprobe.probes.hessian_batched import batches_at_once, top_eigenvalues_batched

    if p["method"] != "block":
        for b, (x, y) in zip(indices, batches):
            values, info = top_eigenvalues(model, x, y, k=p["k"], weight_decay=wd, method=p["method"], tol=p["tol"],
                                           return_info=True)
            yield b, (x, y), values, info
        return
    at_once = batches_at_once(p["batches_at_once"], device)
    warm, group = None, []
    for b, batch in zip(indices, batches):
        group.append((b, batch))
        if len(group) < at_once and b != indices[-1]:
            continue
        t = time.perf_counter()
        values, info = top_eigenvalues_batched(model, [g[1] for g in group], k=p["k"], weight_decay=wd, tol=p["tol"],
                                               seeds=[p["seed"] + g[0] for g in group], warm=warm, hvp=p["hvp"])
        seconds = (time.perf_counter() - t) / len(group)
        warm = info["vectors"]
        if not info["converged"].all():
            missed = [g[0] for g, ok in zip(group, info["converged"]) if not ok]
            log(f"batches {missed}: block solver did not reach tol {p['tol']:g} within its step limit; values kept")
        for i, (bi, batch) in enumerate(group):
            yield bi, batch, values[i], {"n_hvp": int(info["n_hvp"][i]), "seconds": seconds}
        group = []


def hessian(spec: dict, checkpoint_path, outs: dict, device: Device, shard: tuple[int, int] | None = None
            ) -> pd.DataFrame:
    """Top-k Hessian eigenvalues (by magnitude, sign kept) of NLL + wd/2·||θ||² on each
    mini-batch of augmented training images (`hessian_batch_count`; with `shard` = (i, s) only
    those of `shard_range`); one row per (batch, rank) in table hessian. In hessian_summary,
    one row: NEP, APE and Hutchinson's trace, of the whole Hessian and of the NLL's alone, on
    the same batches (`vitprobe.probes.summary`); `merge_hessian` joins the shards' tables."""
    from vitprobe.probes.hessian import parameter_count
    from vitprobe.probes.spectral import hessian_trace
    from vitprobe.probes.summary import spectrum_summary

    out, summary_out = outs["hessian"], outs["hessian_summary"]
    p = spec["probe"]
    wd = spec["train"]["weight_decay"]
    split = training_split(spec) if p["n_batches"] == "all" else None  # else augmented_batches loads it
    indices = shard_range(hessian_batch_count(p, len(split.labels) if split else 0), shard)
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    n_params = parameter_count(model)
    log = _Log("hessian", spec, payload)
    trace_what = f"and trace ({p['trace_samples']} samples)" if p["trace_samples"] else "(no trace)"
    where = f"mini-batches {indices.start}..{indices.stop - 1} (shard {shard[0]} of {shard[1]})" if shard else \
        f"{len(indices)} mini-batches"
    log(f"top-{p['k']} eigenvalues ({p['method']}) {trace_what} on {where} of "
        f"{p['batch_size']} augmented training images; Hessian of NLL + wd/2·‖θ‖² over {n_params:,} "
        f"parameters, wd {wd:g}")
    rows, spectra, traces = [], [], []
    batches = augmented_batches(spec, indices, p["batch_size"], p["seed"], device, split=split)
    for b, (x, y), values, info in log.bar("mini-batches", total=len(indices))(
            _solve(model, batches, indices, p, wd, device, log)):
        shown = ", ".join(f"{v:.4g}" for v in values[:10]) + (", …" if len(values) > 10 else "")
        log(f"batch {b}: {info['n_hvp']} HVPs, {info['seconds']:.1f} s, top eigenvalues {shown}")
        rows += [{"batch": b, "rank": r + 1, "eigenvalue": float(v), "batch_size": len(x), "method": p["method"],
                  "n_hvp": info["n_hvp"]} for r, v in enumerate(values)]
        spectra.append(values)
        if p["trace_samples"]:
            trace, tinfo = hessian_trace(model, x, y, weight_decay=wd, n_samples=p["trace_samples"],
                                         seed=p["seed"] + b, return_info=True)
            log(f"batch {b}: trace {trace:.4g} ± {tinfo['std_error']:.2g}, {tinfo['seconds']:.1f} s")
            traces.append(tinfo["samples"])
    summary = {**spectrum_summary(spectra, traces, weight_decay=wd, n_params=n_params),
               "batch_size": p["batch_size"], "method": p["method"]}
    _write(pd.DataFrame([summary]), "hessian_summary", spec, payload, summary_out)
    df = _write(pd.DataFrame(rows), "hessian", spec, payload, out)
    _log_summary(log, summary, wd, n_params, p["trace_samples"], [out, summary_out])
    return df


def _log_summary(log, summary, wd, n_params, trace_samples, paths):
    trace = (f"trace {summary['trace']:.4g} ± {summary['trace_std_error']:.2g} (NLL alone {summary['trace_nll']:.4g}, "
             f"wd·n_params {wd * n_params:.4g})" if trace_samples else "trace not computed")
    log(f"NEP {summary['nep']:.3f}, APE {summary['ape']:.4g}, λ_max {summary['lambda_max']:.4g}, {trace}; "
        f"wrote {_paths(*paths)}")


def merge_hessian(spec: dict, shards: dict, outs: dict) -> pd.DataFrame:
    """Join the tables of a Hessian job's shards (`shards`: table -> its shard files) into
    the tables one job writes: the hessian rows concatenated in batch order; the summary
    recomputed from the pooled eigenvalues, its trace statistics pooled from the shards'
    (mean, standard error, sample count) exactly as if all samples were pooled. The shards
    must be of one checkpoint and config and cover the batches 0..n-1 once each."""
    from vitprobe.probes.summary import spectrum_summary

    wd = spec["train"]["weight_decay"]
    eig = pd.concat([results.read_run_table(f, "hessian").to_pandas() for f in shards["hessian"]], ignore_index=True)
    summ = pd.concat([results.read_run_table(f, "hessian_summary").to_pandas() for f in shards["hessian_summary"]],
                     ignore_index=True)
    for what, df in (("hessian", eig), ("hessian_summary", summ)):
        for col in ("epoch", "config_hash"):
            if df[col].nunique() > 1:
                raise VitprobeError(f"{what} shards differ in {col} ({', '.join(map(str, df[col].unique()))}): they "
                                    f"are not of one checkpoint and config; rerun the shard jobs")
    if eig["config_hash"].iloc[0] != train_hash(spec):
        raise VitprobeError(f"the hessian shards were computed for another training config (hash "
                            f"{eig['config_hash'].iloc[0]}, this spec's {train_hash(spec)}); rerun the shard jobs")
    batches = sorted(eig["batch"].unique())
    if batches != list(range(len(batches))) or eig.duplicated(["batch", "rank"]).any() or \
            summ["n_batches"].sum() != len(batches):
        raise VitprobeError(f"the {len(shards['hessian'])} hessian shards do not cover the mini-batches 0..n-1 once "
                            f"each (got {len(batches)} distinct batches, {int(summ['n_batches'].sum())} in the "
                            f"summaries); rerun the shard jobs")
    if summ["trace_samples"].nunique() > 1 or summ["n_params"].nunique() > 1:
        raise VitprobeError("hessian_summary shards differ in trace_samples or n_params; rerun the shard jobs")
    eig = eig.sort_values(["batch", "rank"], kind="stable").reset_index(drop=True)
    n_params, samples = int(summ["n_params"].iloc[0]), int(summ["trace_samples"].iloc[0])
    spectra = [g["eigenvalue"].to_numpy() for _, g in eig.groupby("batch", sort=True)]
    summary = {**spectrum_summary(spectra, [], weight_decay=wd, n_params=n_params),
               "batch_size": int(summ["batch_size"].iloc[0]), "method": summ["method"].iloc[0]}
    if samples:
        count = summ["n_batches"].to_numpy() * samples
        mean = float((summ["trace"].to_numpy() * count).sum() / count.sum())
        m2 = np.nan_to_num(summ["trace_std_error"].to_numpy() ** 2 * count * (count - 1)) + \
            count * (summ["trace"].to_numpy() - mean) ** 2  # per shard: Σ (sample − pooled mean)²
        total = int(count.sum())
        summary.update(trace=mean, trace_nll=mean - wd * n_params, trace_samples=samples,
                       trace_std_error=float(np.sqrt(m2.sum() / (total - 1) / total)) if total > 1 else float("nan"))
    payload = {"epoch": int(eig["epoch"].iloc[0])}
    _write(pd.DataFrame([summary]), "hessian_summary", spec, payload, outs["hessian_summary"])
    _write(eig[[c.name for c in results.TABLES["hessian"]]], "hessian", spec, payload, outs["hessian"])
    log = _Log("hessian", spec, payload)
    _log_summary(log, summary, wd, n_params, samples, [outs["hessian"], outs["hessian_summary"]])
    return eig


def evaluate_checkpoint(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """Clean test error / NLL / ECE and NLL on the augmented training set."""
    out = outs["eval"]
    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = device.prepare_model(model)
    log = _Log("eval", spec, payload)
    mean, std = mean_std(spec)
    test, split = test_split(spec), training_split(spec)
    log(f"error, NLL and ECE on {len(test.labels)} test images, NLL on {len(split.labels)} augmented "
        f"training images, batches of {p['batch_size']}")
    row = evaluate.clean_metrics(model, test.images, test.labels, mean, std, device, p["batch_size"],
                                 progress=log.bar("test batches"))
    augment = BatchAugment(mean, std, split.num_classes, **spec["train"]["augment"])
    torch.manual_seed(p["seed"])
    gen = torch.Generator(device=device.torch_device).manual_seed(p["seed"])
    row["nll_train"] = evaluate.augmented_nll(model, split.images, split.labels, augment, device,
                                              p["batch_size"], gen, progress=log.bar("training batches"))
    row["n_train"] = len(split.labels)
    df = _write(pd.DataFrame([row]), "eval", spec, payload, out)
    log(f"error {row['error']:.2f} %, NLL test {row['nll_test']:.4f}, NLL train {row['nll_train']:.4f}, "
        f"ECE {row['ece']:.4f}; wrote {out}")
    return df


def _what_images(spec: dict) -> str:
    d = spec["data"]
    return f"images of {d['imagenet_dir']}" if d["dataset"] == "imagenet" else "test images"


def _map_statistics(spec: dict, checkpoint_path, device: Device, statistic, probe: str, what: str):
    """Per feature map, the image-weighted mean of `statistic(map)` over chunks of the
    probe's images (`runtime.probe_images`). Both statistics used here (the mean
    log-amplitude curve and the mean spatial variance) are means over images, so chunking
    changes nothing but memory; each map is reduced inside the forward pass
    (`features.map_statistics`), so memory does not grow with n_images. Logs `what` it
    computes as the start line of `probe`; returns the job's log too."""
    from vitprobe.augment import normalize
    from vitprobe.features import map_statistics

    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    log = _Log(probe, spec, payload)
    images, mean, std = probe_images(spec, model, p["n_images"], p["seed"])
    chunk = images.chunk_size
    log(f"{what} on {len(images)} {_what_images(spec)}, chunks of {chunk}")
    meta, sums = None, None
    for i in log.bar(f"chunks of {chunk} images")(range(0, len(images), chunk)):
        x = normalize(images.chunk(i, i + chunk)[0].to(device.torch_device), mean, std)
        maps = map_statistics(model, x, {"s": lambda t: np.asarray(statistic(t), dtype=np.float64)})
        stats = [m[-1]["s"] * len(x) for m in maps]
        meta = meta or [m[:5] for m in maps]
        sums = stats if sums is None else [a + b for a, b in zip(sums, stats)]
    return [(*m, total / len(images)) for m, total in zip(meta, sums)], len(images), payload, log


def fourier(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """Relative log amplitude of every feature map's Fourier spectrum; one row per (map, frequency)."""
    from vitprobe.probes.fourier import frequencies, relative_log_amplitude

    out = outs["fourier"]
    maps, n, payload, log = _map_statistics(spec, checkpoint_path, device, lambda t: relative_log_amplitude(t).cpu(),
                                            "fourier", "relative log amplitude of every feature map's Fourier spectrum")
    rows = [{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "freq": float(f),
             "log_amplitude": float(a), "high_freq_delta": float(curve[-1]), "n_images": n}
            for i, name, kind, depth, side, curve in maps for f, a in zip(frequencies(side), curve)]
    df = _write(pd.DataFrame(rows), "fourier", spec, payload, out)
    deltas = [float(curve[-1]) for *_, curve in maps]
    log(f"{len(maps)} maps, mean high-frequency Δ log amplitude {np.mean(deltas):.3f} "
        f"(from {min(deltas):.3f} to {max(deltas):.3f}); wrote {out}")
    return df


def variance(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """Feature-map variance of every map; one row per map."""
    from vitprobe.probes.variance import feature_map_variance

    out = outs["variance"]
    maps, n, payload, log = _map_statistics(spec, checkpoint_path, device, feature_map_variance,
                                            "variance", "spatial variance of every feature map")
    rows = [{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "variance": float(v), "n_images": n}
            for i, name, kind, depth, _, v in maps]
    df = _write(pd.DataFrame(rows), "variance", spec, payload, out)
    log(f"{len(maps)} maps, variance from {df['variance'].min():.4g} to {df['variance'].max():.4g}; wrote {out}")
    return df


def robustness(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """Accuracy under frequency-band noise against clean accuracy; one row per frequency."""
    from vitprobe.probes.robustness import noise_robustness

    out = outs["robustness"]
    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = device.prepare_model(model)
    log = _Log("robustness", spec, payload)
    images, mean, std = probe_images(spec, model, p["n_images"], p["seed"])
    freqs = p["freqs"]
    # images in memory: one pass (noise drawn batch by batch); decoded files: a chunk of
    # batches at a time, accuracies weighted by chunk size
    chunk = len(images) if isinstance(images, TensorSample) else max(p["batch_size"], images.chunk_size)
    log(f"accuracy on {len(images)} {_what_images(spec)}, clean and under band noise (eps "
        f"{p['eps']:g}, width {p['width']:g}) at {len(freqs)} frequencies {min(freqs):g}..{max(freqs):g}, "
        f"batches of {p['batch_size']}")
    classes = getattr(images, "classes", None)
    if classes is not None and len(classes) != getattr(model, "num_classes", len(classes)):
        log(f"warning: {len(classes)} class folders, but the model has {model.num_classes} classes; label i is the "
            f"i-th folder in sorted order, so accuracies are only meaningful if the folders are the model's classes")
    if chunk == len(images):
        x, y = images.chunk(0, chunk)
        df = noise_robustness(model, x, y, mean, std, eps=p["eps"], freqs=freqs, width=p["width"],
                              batch_size=p["batch_size"], seed=p["seed"], device=device,
                              progress=log.bar("passes (clean, then each frequency)"))
    else:
        parts = []
        for i in log.bar(f"chunks of {chunk} images")(range(0, len(images), chunk)):
            x, y = images.chunk(i, i + chunk)
            parts.append(noise_robustness(model, x, y, mean, std, eps=p["eps"], freqs=freqs, width=p["width"],
                                          batch_size=p["batch_size"], seed=p["seed"] + i, device=device))
        df = parts[0].copy()
        for col in ("accuracy", "clean_accuracy"):
            df[col] = sum(part[col].to_numpy() * min(chunk, len(images) - i)
                          for i, part in zip(range(0, len(images), chunk), parts)) / len(images)
        df["delta_accuracy"] = df["accuracy"] - df["clean_accuracy"]
    df["n_images"] = len(images)
    df = _write(df, "robustness", spec, payload, out)
    worst = df.loc[df["delta_accuracy"].idxmin()]
    log(f"clean accuracy {worst['clean_accuracy']:.2f} %, worst delta {worst['delta_accuracy']:+.2f} pp "
        f"at frequency {worst['freq']:g}; wrote {out}")
    return df


def corruption_folder(spec: dict):
    """The CIFAR-C folder of a probe spec: probes.corruption.folder, else the published
    folder of the run's dataset under data.root (`vitprobe.corruptions.default_folder`)."""
    from vitprobe.corruptions import default_folder
    folder = spec["probe"].get("folder")
    return folder if folder else default_folder(spec["data"]["dataset"], spec["data"]["root"])


def corruption(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """Accuracy and NLL on CIFAR-C per corruption and severity, with the clean values of the
    same test images; one row per (corruption, severity)."""
    from vitprobe import corruptions
    from vitprobe.probes.corruption import corruption_metrics

    out = outs["corruption"]
    p = spec["probe"]
    dataset = spec["data"]["dataset"]
    folder = corruption_folder(spec)
    names = corruptions.corruption_names(p["extra"])
    n = corruptions.check(folder, names, dataset)
    index = None
    if p["n_images"] is not None and p["n_images"] < n:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(p["seed"]))[:p["n_images"]].sort().values
    test = test_split(spec)
    if len(test.labels) != n:
        raise corruptions.DataDamaged(f"{folder}: {n} images per severity, but the clean {dataset} test set has "
                                      f"{len(test.labels)}; probes.corruption.folder must hold the corrupted "
                                      f"copies of this test set")
    clean_idx = index if index is not None else torch.arange(n)
    model, payload = load_model(checkpoint_path, spec)
    model = device.prepare_model(model)
    log = _Log("corruption", spec, payload)
    log(f"accuracy and NLL on {len(clean_idx)} test images under {len(names)} corruptions x {len(p['severities'])} "
        f"severities from {folder}, batches of {p['batch_size']}")
    df = corruption_metrics(model, folder, names, p["severities"], *mean_std(spec), device, test.images[clean_idx],
                            test.labels[clean_idx], index=index, batch_size=p["batch_size"], dataset=dataset,
                            progress=log.bar("(corruption, severity) blocks"))
    df = _write(df, "corruption", spec, payload, out)
    log(f"clean accuracy {df['clean_accuracy'].iloc[0]:.2f} %, mean corrupted accuracy {df['accuracy'].mean():.2f} %; "
        f"wrote {out}")
    return df


def landscape(spec: dict, checkpoint_path, outs: dict, device: Device) -> pd.DataFrame:
    """NLL + L2 along two random directions (``probes.landscape.style``: the release's or Li
    et al.'s definition, `vitprobe.probes.landscape`): a 1-D line and a 2-D plane."""
    from vitprobe.probes.landscape import grid_1d, grid_2d, landscape_style, loss_landscape

    out = outs["landscape"]
    p = spec["probe"]
    style = landscape_style(p["style"])
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    log = _Log("landscape", spec, payload)
    wd = spec["train"]["weight_decay"]
    grids = [f"{n} points on a line" for n in [p["points_1d"]] if n]
    grids += [f"{n}×{n} points on a plane" for n in [p["points_2d"]] if n]
    log(f"{style.formula} (wd {wd:g}, style {p['style']}) on {p['n_batches']} mini-batches of {p['batch_size']} "
        f"augmented training images at {' and '.join(grids) or 'no points'} along random directions, "
        f"radius {p['radius']:g}")
    batches = list(augmented_batches(spec, p["n_batches"], p["batch_size"], p["seed"], device))
    gen = torch.Generator(device=device.torch_device).manual_seed(p["seed"])
    d1, d2 = style.direction(model, gen), style.direction(model, gen)
    parts = []
    if p["points_1d"]:
        line = loss_landscape(model, batches, [d1], grid_1d(p["radius"], p["points_1d"]), wd,
                              progress=log.bar("1d grid points"), style=p["style"])
        parts.append(line.assign(grid="1d", y=0.0))
    if p["points_2d"]:
        plane = loss_landscape(model, batches, [d1, d2], grid_2d(p["radius"], p["points_2d"]), wd,
                               progress=log.bar("2d grid points"), style=p["style"])
        parts.append(plane.assign(grid="2d"))
    parts = [part.assign(style=p["style"]) for part in parts]
    df = _write(pd.concat(parts, ignore_index=True), "landscape", spec, payload, out)
    best = df.loc[df["loss"].idxmin()]
    near = df.loc[(df["x"] ** 2 + df["y"] ** 2).idxmin()]  # the origin itself on odd grids
    at = "origin" if near["x"] == 0 and near["y"] == 0 else f"point nearest the origin ({near['x']:g}, {near['y']:g})"
    log(f"min loss {best['loss']:.4g} at ({best['x']:g}, {best['y']:g}) on the {best['grid']} grid, loss at {at} "
        f"{near['loss']:.4g}; wrote {out}")
    return df
