"""Training with the paper's recipe, device-resident data and kill-safe resume.

Recipe (every value a key of `train` in config.yaml): AdamW (or SGD), peak learning rate
`lr` scaled linearly from `lr_batch_size` to `batch_size`, linear warmup per step over
`warmup_epochs`, then cosine to 0 at `epochs`; gradient-norm clipping; batch augmentation
(crop + flip, RandAugment, Mixup/CutMix, label smoothing) on the device.

Resume: after every epoch, and when SIGTERM/SIGUSR1 (Slurm sends them before a time limit or
preemption) or SIGINT (Ctrl-C) arrive, the whole training state (model, optimizer, RNG states,
epoch, step, the epoch's permutation and position, the log so far) is written atomically to
`<state_dir>/resume.pt`. Re-running resumes from it, so a killed run ends bit-identical to an
uninterrupted one on the same device. Checkpoints are written to the state dir too and only
linked to the declared outputs when training is complete.

Nothing non-finite is saved: before every write the parameters, buffers and optimizer state
are checked (`first_nonfinite`); a NaN/inf raises TrainingDiverged and the last finite
resume state stays the resume point.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from vitprobe import results
from vitprobe.atomic import atomic_path
from vitprobe.config.job import JobSpec
from vitprobe.data.augment import BatchAugment
from vitprobe.data.registry import mean_std
from vitprobe.data.splits import test_split, training_split
from vitprobe.device import Device
from vitprobe.errors import VitprobeError
from vitprobe.models import checkpoint
from vitprobe.models.losses import nll, trainable
from vitprobe.models.recipe import build_from_recipe
from vitprobe.probes.evaluate.measure import clean_metrics

RESUME_FILE = "resume.pt"


class TrainingDiverged(VitprobeError, RuntimeError):
    """The loss, a weight or an optimizer state became NaN or inf; the last finite resume state is kept."""


class ResumeError(VitprobeError, RuntimeError):
    """A resume file is damaged or was written by another config."""


class Preempted(SystemExit):
    """SIGTERM/SIGUSR1/SIGINT arrived; the state was saved and the process exits with 128 + the
    signal number (143, 138, 130)."""


def first_nonfinite(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """The first tensor that a checkpoint or resume file would hold (parameters, persistent
    buffers, optimizer state) with a NaN or inf, as e.g. "parameter head.weight" or "optimizer
    state exp_avg_sq of head.weight"; None if all are finite. Non-persistent buffers (e.g. an
    attention mask of -inf) are not saved and not checked."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = [(f"{'parameter' if id(t) in names else 'buffer'} {n}", t)
               for n, t in model.state_dict(keep_vars=True).items() if torch.is_tensor(t)]
    if optimizer is not None:
        tensors += [(f"optimizer state {k} of {names.get(id(p), 'an unnamed parameter')}", t)
                    for p, state in optimizer.state.items() for k, t in state.items() if torch.is_tensor(t)]
    for name, t in tensors:
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            return name
    return None


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """Learning rate used for optimizer step `step` (0-based): linear warmup
    peak·(step+1)/warmup_steps, then cosine peak·½(1 + cos(π·(step − W)/(T − W)))."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def peak_lr(train_cfg: dict) -> float:
    """The configured lr refers to `lr_batch_size`; scale linearly to the real batch size."""
    return train_cfg["lr"] * train_cfg["batch_size"] / train_cfg["lr_batch_size"]


def make_optimizer(model: torch.nn.Module, cfg: dict) -> torch.optim.Optimizer:
    params = trainable(model)
    lr = peak_lr(cfg)
    if cfg["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg["weight_decay"], betas=tuple(cfg["betas"]))
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=cfg["weight_decay"], momentum=cfg["momentum"],
                               nesterov=True)
    raise ValueError(f"train.optimizer: {cfg['optimizer']!r}; allowed: adamw, sgd")


class _SignalFlag:
    """Turns SIGTERM/SIGUSR1/SIGINT into a flag checked between steps. While it is on, a
    further signal (a second Ctrl-C while the state is being saved) only sets the flag again.
    A SIGINT that the process was started ignoring (a background job of a script) stays ignored."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in self.SIGNALS:
            if s == signal.SIGINT and signal.getsignal(s) == signal.SIG_IGN:
                continue
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _rng_state(gens: dict[str, torch.Generator]) -> dict:
    state = {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in gens.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, gens: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for k, g in gens.items():
        g.set_state(state[k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_resume(state_dir: Path, expected_hash: str) -> dict | None:
    path = state_dir / RESUME_FILE
    if not path.exists():
        return None
    state = checkpoint.read(path, what="resume file", error=ResumeError, fix="delete it to start the run over")
    if not isinstance(state, dict) or "optimizer" not in state:
        raise ResumeError(f"resume file {path} is damaged or not a vitprobe resume file (no 'optimizer' entry); "
                          f"delete it to start the run over")
    if state.get("config_hash") != expected_hash:
        raise ResumeError(f"resume file {path} was written with config hash {state.get('config_hash')}, but the "
                          f"current training config gives {expected_hash}. Refusing to mix configs: restore the "
                          f"config, or delete {state_dir} to start the run over.")
    return state


def _link_or_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


TENSORBOARD_SCALARS = ("train_loss", "lr", "test_error", "test_nll", "images_per_s")


def tensorboard_writer(directory):
    """TensorBoard's SummaryWriter for the per-epoch training curves, or None when off."""
    if not directory:
        return None
    try:
        # optional: vitprobe[tensorboard], only with tensorboard: true
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise VitprobeError("TensorBoard logging is on, but the tensorboard package is missing: "
                            "pip install 'vitprobe[tensorboard]', or set tensorboard: false") from None
    return SummaryWriter(str(directory))


def train(spec: dict | JobSpec, *, state_dir, checkpoints: dict[int, str], log_path, device: Device,
          progress: bool = True, tensorboard=None) -> pd.DataFrame:
    """Train the run described by `spec`; write the checkpoints named in `checkpoints`
    ({epoch: path}) and the per-epoch log table. Returns the log. With `tensorboard` (a
    folder), the per-epoch curves also go to TensorBoard event files there."""
    job = JobSpec.of(spec)
    cfg, run = job.train, job.run_columns
    run_id, h = job.run.id, job.hash
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    dev = device.torch_device

    writer = tensorboard_writer(tensorboard)
    torch.manual_seed(run["seed"])
    recipe = job.recipe
    model = device.prepare_model(build_from_recipe(recipe))
    optimizer = make_optimizer(model, cfg)
    mean, std = mean_std(job.data["dataset"])
    train_set, test_set = training_split(job.raw), test_split(job.raw)
    augment = BatchAugment(mean, std, train_set.num_classes, **cfg["augment"])
    images, labels = train_set.images.to(dev), train_set.labels.to(dev)  # uint8 on the device: 150 MB for CIFAR

    n = len(images)
    batch_size = min(cfg["batch_size"], n)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps, warmup_steps = cfg["epochs"] * steps_per_epoch, cfg["warmup_epochs"] * steps_per_epoch
    lr_peak = peak_lr(cfg)
    gens = {"perm": torch.Generator().manual_seed(run["seed"]),
            "augment": torch.Generator(device=dev).manual_seed(run["seed"] + 1)}
    step_model = torch.compile(model, backend=device.compile) if cfg.get("compile") and device.compile else model

    epoch, step, log_rows, perm, start_batch = 0, 0, [], None, 0
    resume_point = "none: no finite state was saved"
    loss_sum, seen = 0.0, 0  # running sums of the current epoch (kept across a mid-epoch resume)
    state = load_resume(state_dir, h)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], gens)
        epoch, step, log_rows = state["epoch"], state["step"], list(state["log"])
        perm, start_batch = state.get("perm"), state.get("batch", 0)
        loss_sum, seen = state.get("loss_sum", 0.0), state.get("seen", 0)
        if (bad := first_nonfinite(model, optimizer)) is not None:  # written before the check existed
            raise ResumeError(f"resume file {state_dir / RESUME_FILE} holds a non-finite {bad}; delete "
                              f"{state_dir} to start the run over")
        print(f"[{run_id}] resuming at epoch {epoch}, step {step}", file=sys.stderr)
        resume_point = f"{state_dir / RESUME_FILE} (epoch {epoch}, step {step})"

    def diverged(what: str) -> TrainingDiverged:
        return TrainingDiverged(f"run {run_id}: {what}; the last finite state is {resume_point}. Lower train.lr "
                                f"or set train.grad_clip, then delete {state_dir} to start the run over")

    def ensure_finite(where: str):
        bad = first_nonfinite(model, optimizer)
        if bad is not None:
            raise diverged(f"{bad} is NaN or inf {where} (step {step}) and was not saved")

    # The savers write; their callers check the state once before (ensure_finite).
    def save_state(batch: int = 0, current_perm=None, epoch_sums=(0.0, 0)):
        nonlocal resume_point
        payload = {"config_hash": h, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "rng": _rng_state(gens), "epoch": epoch, "step": step, "log": log_rows,
                   "batch": batch, "perm": current_perm, "loss_sum": epoch_sums[0], "seen": epoch_sums[1]}
        with atomic_path(state_dir / RESUME_FILE) as tmp:
            torch.save(payload, tmp)
        resume_point = f"{state_dir / RESUME_FILE} (epoch {epoch}, step {step})"

    def save_checkpoint(e: int):
        if e in checkpoints:
            checkpoint.save(state_dir / f"e{e}.pt", model, run=run, epoch=e, config_hash=h, recipe=recipe)

    if state is None:
        ensure_finite("at initialization")
        save_checkpoint(0)

    with _SignalFlag() as flag:
        while epoch < cfg["epochs"]:
            if perm is None:
                perm, start_batch = torch.randperm(n, generator=gens["perm"]), 0
            model.train()
            t0, seen_before = time.perf_counter(), seen  # seen_before > 0 only after a mid-epoch resume
            bar = tqdm(total=steps_per_epoch, initial=start_batch, desc=f"{run_id} epoch {epoch + 1}/{cfg['epochs']}",
                       disable=not progress, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)
            for b in range(start_batch, steps_per_epoch):
                if flag.signum is not None:
                    ensure_finite(f"at epoch {epoch + 1}, batch {b}")
                    save_state(b, perm, (loss_sum, seen))
                    bar.close()  # ends the progress bar's line: the message below is a line of its own
                    if flag.signum == signal.SIGINT:  # as the bar counts: epoch from 1, steps of this epoch
                        print(f"[{run_id}] interrupted at epoch {epoch + 1}, step {b} of {steps_per_epoch}: "
                              f"state saved in {state_dir}; rerun to resume", file=sys.stderr)
                    else:
                        print(f"[{run_id}] signal {flag.signum}: state saved at epoch {epoch}, batch {b}; exiting",
                              file=sys.stderr)
                    raise Preempted(128 + flag.signum)
                idx = perm[b * batch_size:(b + 1) * batch_size].to(dev)
                with device.small_ops():
                    x, y = augment(images[idx], labels[idx], gens["augment"])
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, warmup_steps, lr_peak)
                with device.autocast():
                    out = step_model(device.prepare_input(x))
                loss = nll(out.float(), y)
                if not torch.isfinite(loss):
                    raise diverged(f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
                optimizer.step()
                step += 1
                loss_sum += loss.item() * len(idx)
                seen += len(idx)
                bar.update(1)
                img_s = (seen - seen_before) / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{img_s:.0f}", refresh=False)
            bar.close()
            seconds = time.perf_counter() - t0
            epoch, perm = epoch + 1, None
            epoch_loss, timed = loss_sum / max(seen, 1), seen - seen_before
            loss_sum, seen = 0.0, 0
            metrics = {"error": float("nan"), "nll_test": float("nan")}
            if epoch % cfg["eval_every"] == 0 or epoch == cfg["epochs"]:
                metrics = clean_metrics(model, test_set.images, test_set.labels, mean, std, device)
            log_rows.append({"epoch": epoch, "step": step, "train_loss": epoch_loss,
                             "lr": optimizer.param_groups[0]["lr"], "test_error": metrics["error"],
                             "test_nll": metrics["nll_test"], "seconds": seconds,
                             "images_per_s": timed / seconds if seconds > 0 else float("nan")})
            print(f"[{run_id}] epoch {epoch}: loss {log_rows[-1]['train_loss']:.4f} test error "
                  f"{metrics['error']:.2f}% ({seconds:.1f} s)", file=sys.stderr)
            if writer is not None:
                for key in TENSORBOARD_SCALARS:
                    if math.isfinite(log_rows[-1][key]):
                        writer.add_scalar(key, log_rows[-1][key], epoch)
                writer.flush()
            ensure_finite(f"after epoch {epoch}")
            save_checkpoint(epoch)
            save_state()
            # the log so far, for a look while the run is going (the declared log is written at the end)
            results.write_run_table(pd.DataFrame(log_rows), "train_log", state_dir / "train_log.parquet", run=run,
                                    config_hash=h)

    log = pd.DataFrame(log_rows, columns=["epoch", "step", "train_loss", "lr", "test_error", "test_nll",
                                          "seconds", "images_per_s"])
    results.write_run_table(log, "train_log", log_path, run=run, config_hash=h)
    for e, path in checkpoints.items():
        _link_or_copy(state_dir / f"e{e}.pt", Path(path))
    if writer is not None:
        writer.close()
    return log
