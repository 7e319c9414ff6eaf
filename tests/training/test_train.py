"""Training: the schedule, kill-safe resume (bit-identical), refusal of foreign state, loud NaN."""

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vitprobe.config.load import validate
from vitprobe.data import splits as data
from vitprobe.device import resolve
from vitprobe.models import checkpoint
from vitprobe.training.loop import ResumeError, TrainingDiverged, first_nonfinite, lr_at, peak_lr, train

REPO = Path(__file__).resolve().parents[2]


def test_lr_schedule_matches_hand_computed_values():
    # warmup over 4 steps to peak 1.0, then cosine over the remaining 8 steps
    assert [lr_at(s, 12, 4, 1.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 12, 4, 1.0) == 1.0                       # cos(0)
    assert lr_at(8, 12, 4, 1.0) == pytest.approx(0.5)        # cos(pi/2): half way
    assert lr_at(6, 12, 4, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(12, 12, 4, 1.0) == pytest.approx(0.0, abs=1e-15)
    assert lr_at(0, 10, 0, 2.0) == 2.0                       # no warmup


def test_lr_scales_linearly_with_batch_size():
    assert peak_lr({"lr": 1.25e-4, "batch_size": 96, "lr_batch_size": 96}) == 1.25e-4
    assert peak_lr({"lr": 1.25e-4, "batch_size": 384, "lr_batch_size": 96}) == pytest.approx(5e-4)


@pytest.fixture
def tiny_spec(demo_config, tmp_path):
    """A seconds-long run: 10 classes x 16 images, a 2-block ViT of width 16, 3 epochs."""
    return _tiny_spec(demo_config, tmp_path / "data")


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    """(spec, folder) of an uninterrupted CLI run of tiny_spec (on its own copy of the data),
    shared by the resume tests: each CLI run costs seconds of imports."""
    out = tmp_path_factory.mktemp("reference")
    spec = _tiny_spec(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text()), out / "data")
    subprocess.run(_cli_train(spec, out), check=True, capture_output=True)
    return spec, out


def _tiny_spec(demo_config, root):
    demo_config["data"].update(dataset="synthetic", root=str(root), synthetic={"num_classes": 10, "train_per_class": 16,
                                                          "test_per_class": 4, "seed": 0})
    demo_config["models"]["vit_demo"]["kwargs"].update(embed_dim=16, depth=2, num_heads=2)
    demo_config["train"].update(epochs=3, warmup_epochs=1, checkpoint_epochs=[0, 1, 3], batch_size=32,
                                lr_batch_size=32)
    demo_config["train"]["augment"].update(randaugment={"num_ops": 2, "magnitude": 9}, cutmix_alpha=0.8)
    demo_config["probes"]["hessian"]["epochs"] = [0]
    demo_config["probes"]["eval"]["epochs"] = [1]
    demo_config["figures"] = {}
    plan = validate(demo_config)
    data.prepare("synthetic", root, synthetic=demo_config["data"]["synthetic"])
    run = next(r for r in plan.runs if r.model == "vit_demo" and r.fraction == 1)
    return plan.train_spec(run)


def _cli_train(spec, out, extra=()):
    ckpts = [a for e in spec["train"]["checkpoint_epochs"] for a in ("--checkpoint", f"{e}={out}/ckpt/e{e}.pt")]
    cmd = [sys.executable, "-m", "vitprobe", "train", "--spec", json.dumps(spec), "--device", "cpu",
           "--state-dir", str(out / ".train"), *ckpts, "--log", str(out / "log.parquet"),
           *extra]
    return cmd


def _final_weights(out, spec):
    last = max(spec["train"]["checkpoint_epochs"])
    return checkpoint.load(out / f"ckpt/e{last}.pt")["model"]


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def _kill_when(proc, condition, sig, timeout=120, then=None):
    t0 = time.time()
    while not condition():
        assert proc.poll() is None, "training finished before it could be interrupted"
        assert time.time() - t0 < timeout
        time.sleep(0.05)
    proc.send_signal(sig)
    if then is not None:
        then()
    return proc.wait(timeout=60)


# `vitprobe train` that pauses in its 7th step (epoch 2, batch 2 of 5) until the test has sent its
# signal (argv: marker path, signal number, then the verb's arguments), and that gets the signal
# again while the state is being saved.
_PAUSED_TRAIN = """
import os, pathlib, signal, sys, time
import torch
import vitprobe.training.loop as loop
from vitprobe.cli import main
marker, sig = pathlib.Path(sys.argv[1]), int(sys.argv[2])
sent, real_nll, real_save, calls = marker.with_suffix(".sent"), loop.nll, torch.save, [0]
def nll(*args):
    calls[0] += 1
    if calls[0] == 7:
        marker.touch()
        while not sent.exists():
            time.sleep(0.01)
    return real_nll(*args)
def save(obj, f, *args, **kwargs):
    if sent.exists() and pathlib.Path(f).name.startswith(".resume.pt."):
        os.kill(os.getpid(), sig)
    return real_save(obj, f, *args, **kwargs)
loop.nll, torch.save = nll, save
sys.exit(main(sys.argv[3:]))
"""

INTERRUPTED_LINE = {  # the last line on stderr after the signal, at epoch 2 (the bar's count), batch 2 of 5
    signal.SIGTERM: r"\[synthetic-vit_demo-k0-f1-s0\] signal 15: state saved at epoch 1, batch 2; exiting",
    signal.SIGINT: r"\[synthetic-vit_demo-k0-f1-s0\] interrupted at epoch 2, step 2 of 5: state saved in "
                   r"\S+/cut/\.train; rerun to resume"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_interrupted_run_resumes_bit_identical(tiny_spec, tiny_reference, tmp_path, sig):
    ref, cut = tiny_reference[1], tmp_path / "cut"

    if sig == signal.SIGKILL:  # at an arbitrary point after the first epoch's state was saved
        proc = subprocess.Popen(_cli_train(tiny_spec, cut), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)
        rc = _kill_when(proc, lambda: (cut / ".train/resume.pt").exists(), sig)
        assert rc == -signal.SIGKILL
    else:  # Slurm's warning signal, or Ctrl-C: the state is saved at the step, one line says so, exit non-zero
        marker = tmp_path / "paused"
        cmd = [sys.executable, "-c", _PAUSED_TRAIN, str(marker), str(int(sig)), *_cli_train(tiny_spec, cut)[3:]]
        # SIGINT at its default even where the tests run as a background job (which starts ignoring it,
        # and training keeps an ignored SIGINT ignored, as a script's background job should)
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        rc = _kill_when(proc, marker.exists, sig, then=marker.with_suffix(".sent").touch)
        stderr = proc.stderr.read()
        assert rc == 128 + sig, stderr  # 143 for SIGTERM, 130 for SIGINT
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert re.fullmatch(INTERRUPTED_LINE[sig], stderr.splitlines()[-1]), stderr
        state = torch.load(cut / ".train/resume.pt", weights_only=True)
        assert (state["epoch"], state["batch"], state["step"]) == (1, 2, 7)  # at the step, not the epoch start
        assert state["perm"] is not None and state["seen"] == 64
    assert not (cut / "log.parquet").exists()  # nothing looks complete
    assert not (cut / "ckpt/e3.pt").exists()

    resumed = subprocess.run(_cli_train(tiny_spec, cut), check=True, capture_output=True, text=True)
    assert "resuming at epoch" in resumed.stderr
    _assert_identical(_final_weights(ref, tiny_spec), _final_weights(cut, tiny_spec))
    import pandas as pd
    logs = [pd.read_parquet(d / "log.parquet") for d in (ref, cut)]
    for col in ("epoch", "step", "train_loss", "test_error", "test_nll", "lr"):
        assert logs[0][col].tolist() == logs[1][col].tolist(), col


def test_resume_with_changed_config_is_refused(tiny_spec, tmp_path):
    out = tmp_path / "run"
    train(tiny_spec, state_dir=out / ".train", checkpoints={3: out / "e3.pt"}, log_path=out / "log.parquet",
          device=resolve("cpu"), progress=False)
    tiny_spec["train"]["lr"] *= 2
    with pytest.raises(ResumeError, match="config hash"):
        train(tiny_spec, state_dir=out / ".train", checkpoints={3: out / "e3.pt"}, log_path=out / "log.parquet",
              device=resolve("cpu"), progress=False)


def test_damaged_resume_file_is_refused(tiny_spec, tmp_path):
    state_dir = tmp_path / ".train"
    state_dir.mkdir()
    (state_dir / "resume.pt").write_bytes(b"not a torch file")
    with pytest.raises(ResumeError, match="damaged"):
        train(tiny_spec, state_dir=state_dir, checkpoints={}, log_path=tmp_path / "log.parquet",
              device=resolve("cpu"), progress=False)


def test_nan_loss_stops_with_run_epoch_and_step(tiny_spec, tmp_path, monkeypatch):
    import vitprobe.training.loop as train_module
    real = train_module.nll
    calls = {"n": 0}

    def poisoned(logits, targets):
        calls["n"] += 1
        loss = real(logits, targets)
        return loss * float("nan") if calls["n"] == 8 else loss  # 5 steps per epoch: epoch 2, step 8

    monkeypatch.setattr(train_module, "nll", poisoned)
    with pytest.raises(TrainingDiverged) as err:
        train(tiny_spec, state_dir=tmp_path / ".train", checkpoints={3: tmp_path / "e3.pt"},
              log_path=tmp_path / "log.parquet", device=resolve("cpu"), progress=False)
    msg = str(err.value)
    assert "synthetic-vit_demo-k0-f1-s0" in msg and "epoch 2" in msg and "step 8" in msg and "nan" in msg
    assert f"last finite state is {tmp_path / '.train/resume.pt'} (epoch 1, step 5)" in msg and "\n" not in msg
    assert torch.load(tmp_path / ".train/resume.pt", weights_only=True)["epoch"] == 1  # last good state kept
    assert not (tmp_path / "e3.pt").exists()


def test_checkpoint_from_another_config_is_refused(tiny_spec, tmp_path):
    from vitprobe.config.identity import train_hash
    from vitprobe.models.recipe import load_run_model as load_model
    out = tmp_path / "run"
    train(tiny_spec, state_dir=out / ".train", checkpoints={0: out / "e0.pt"}, log_path=out / "log.parquet",
          device=resolve("cpu"), progress=False)
    payload = torch.load(out / "e0.pt", weights_only=True)
    assert payload["config_hash"] == train_hash(tiny_spec) and payload["epoch"] == 0
    assert payload["run"]["model"] == "vit_demo"
    import vitprobe  # the checkpoint alone rebuilds the model the pipeline loads with the spec
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(vitprobe.load_checkpoint(out / "e0.pt")(x), load_model(out / "e0.pt", tiny_spec)[0](x))
    tiny_spec["train"]["weight_decay"] = 0.5
    with pytest.raises(checkpoint.CheckpointError, match="config hash"):
        load_model(out / "e0.pt", tiny_spec)
    (out / "e0.pt").write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load(out / "e0.pt")


def test_drop_path_rate_reaches_the_model(tiny_spec):
    from vitprobe.models.recipe import build_model
    assert not [m for m in build_model(tiny_spec).modules() if type(m).__name__ == "DropPath"]
    tiny_spec["train"]["drop_path_rate"] = 0.2
    probs = [m.drop_prob for m in build_model(tiny_spec).modules() if type(m).__name__ == "DropPath"]
    assert probs and max(probs) == pytest.approx(0.2)


def _nonfinite_tensors(obj, where="") -> list[str]:
    """Paths of the tensors in a (nested) payload that hold a NaN or inf."""
    if torch.is_tensor(obj):
        return [where] if obj.is_floating_point() and not torch.isfinite(obj).all() else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    return [p for k, v in items for p in _nonfinite_tensors(v, f"{where}/{k}")]


def _bad_files(folder) -> dict:
    return {str(p): bad for p in sorted(folder.rglob("*.pt"))
            if (bad := _nonfinite_tensors(torch.load(p, weights_only=True)))}


@pytest.fixture
def diverging_spec(tiny_spec):
    """resnet_demo on SGD with lr 2e5, no clipping, one step per epoch (batch = all 160 images):
    after the 3rd step a BN running variance is inf while the training loss is still finite.
    (Found by a scan: lr 1e5..5e5 do this here; narrower widths and lr 3e4 go straight to a
    NaN loss, which the loss check already stops.)"""
    from vitprobe.config.identity import Run
    tiny_spec["run"] = Run.parse("synthetic-resnet_demo-k0-f1-s0").columns()
    tiny_spec["model"] = {"arch": "resnet18_cifar", "kwargs": {"layers": [1, 1, 1, 1], "widths": [16, 32, 64, 128]}}
    tiny_spec["train"].update(optimizer="sgd", lr=2e5, grad_clip=0, warmup_epochs=0, batch_size=160,
                              lr_batch_size=160, checkpoint_epochs=[0, 1, 2, 3])
    return tiny_spec


def _train_diverging(spec, out, epochs):
    return train(spec, state_dir=out / ".train", checkpoints={e: out / f"ckpt/e{e}.pt" for e in epochs},
                 log_path=out / "log.parquet", device=resolve("cpu"), progress=False)


@pytest.mark.parametrize("epochs", [(0, 1, 2, 3), (0, 1, 2)], ids=["bad-epoch-checkpointed", "resume-only"])
def test_diverging_weights_are_never_saved(diverging_spec, tmp_path, monkeypatch, epochs):
    import vitprobe.training.loop as train_module
    # precondition: without the check, the run exits normally with a finite loss every epoch
    # and writes non-finite tensors into resume.pt (and the final checkpoint, if it is one)
    with monkeypatch.context() as m:
        m.setattr(train_module, "first_nonfinite", lambda model, optimizer=None: None)
        log = _train_diverging(diverging_spec, tmp_path / "unchecked", epochs)
    assert log["train_loss"].map(math.isfinite).all() and log["train_loss"].iloc[-1] > 1e6
    bad = {Path(f).relative_to(tmp_path / "unchecked").as_posix() for f in _bad_files(tmp_path / "unchecked")}
    assert bad == {".train/resume.pt", *((".train/e3.pt", "ckpt/e3.pt") if 3 in epochs else ())}

    out = tmp_path / "checked"
    with pytest.raises(TrainingDiverged) as err:
        _train_diverging(diverging_spec, out, epochs)
    msg = str(err.value)
    assert "\n" not in msg and "run synthetic-resnet_demo-k0-f1-s0: buffer " in msg
    assert "running_var is NaN or inf after epoch 3 (step 3) and was not saved" in msg
    assert f"the last finite state is {out / '.train/resume.pt'} (epoch 2, step 2)" in msg
    assert _bad_files(out) == {}
    assert torch.load(out / ".train/resume.pt", weights_only=True)["epoch"] == 2  # still the resume point
    assert sorted(p.name for p in (out / ".train").glob("*.pt")) == ["e0.pt", "e1.pt", "e2.pt", "resume.pt"]
    assert not (out / "ckpt").exists() and not (out / "log.parquet").exists()  # nothing looks complete


def test_first_nonfinite_names_the_first_bad_tensor():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    model[1].register_buffer("mask", torch.tensor([0.0, float("-inf")]), persistent=False)  # never saved
    assert first_nonfinite(model, optimizer) is None
    with torch.no_grad():
        optimizer.state[model[2].bias]["exp_avg_sq"][1] = float("inf")
        assert first_nonfinite(model, optimizer) == "optimizer state exp_avg_sq of 2.bias"
        assert first_nonfinite(model) is None  # the model alone is finite
        model[2].weight[1, 3] = float("nan")
        assert first_nonfinite(model, optimizer) == "parameter 2.weight"
        model[1].running_var[0] = float("inf")
        assert first_nonfinite(model, optimizer) == "buffer 1.running_var"  # state-dict order
        model[0].bias[0] = float("-inf")
        assert first_nonfinite(model, optimizer) == "parameter 0.bias"


def test_tensorboard_gets_the_training_curves(tiny_spec, tmp_path):
    """With --tensorboard, the event files hold each epoch's logged values, equal to the log table."""
    pytest.importorskip("tensorboard")  # in the `test` extra, so CI has it
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    done = subprocess.run(_cli_train(tiny_spec, out, ["--tensorboard", str(tmp_path / "tb")]), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    log = pd.read_parquet(out / "log.parquet").set_index("epoch")
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "lr", "test_error", "test_nll", "images_per_s"}
    for tag in ("train_loss", "lr", "test_error"):
        got = {e.step: e.value for e in events.Scalars(tag)}
        assert sorted(got) == [1, 2, 3]
        assert got == pytest.approx(log[tag].to_dict(), rel=1e-6), tag  # float32 in the event file
