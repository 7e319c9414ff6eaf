"""The GPU path on the CPU (`device: rehearse`: bf16 autocast, channels_last, torch.compile's
graph capture): a small ResNet and a small ViT train with all of it on, a killed rehearsal
resumes bit-identical to an uninterrupted one, and every probe (CIFAR-C's on random files in
its layout) runs on the result, the
float32 ones (`Probe.exact`) exactly as on the plain CPU: autocast leaking into the Hessian,
the trace, the landscape or the NLL would change their numbers."""

import copy
import json
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_PROBES, tiny_vit_config

from vitprobe import catalog, results
from vitprobe.cli import main
from vitprobe.config.load import validate
from vitprobe.data import splits as data
from vitprobe.device import resolve
from vitprobe.models import checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

EPOCHS = 2
PROBES = TINY_PROBES  # every probe; the CIFAR-C folder of those that read it: the fixture's
IGNORED = {c.name for c in results.PROVENANCE_COLUMNS} | {
    c.name for cols in results.TABLES.values() for c in cols if c.unit in ("s", "1/s")}


def test_rehearse_is_the_cpu_with_cudas_tricks():
    cpu, rehearse = resolve("cpu"), resolve("rehearse")
    assert rehearse.torch_device.type == "cpu" and rehearse.autocast_dtype == torch.bfloat16
    assert rehearse.channels_last and rehearse.compile == "aot_eager" and rehearse.accelerated
    assert not cpu.accelerated and rehearse.exact() == cpu


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(plan, {model: run}, folder): a small ResNet and a small ViT, train.compile on."""
    tmp = tmp_path_factory.mktemp("rehearse")
    probes = {p: {**s, "epochs": [EPOCHS]} for p, s in PROBES.items()}
    folder = str(_write_cifar_c(tmp / "C", n=60))  # tiny_vit_config: 6 test images x 10 classes
    for name in probes:
        if "corruptions" in catalog.PROBES[name].reads:
            probes[name]["folder"] = folder
    config = tiny_vit_config(tmp, probes, epochs=EPOCHS)
    config["experiments"] = {"x": {"models": ["resnet_demo", "vit_demo"]}}
    config["train"].update(compile=True, checkpoint_epochs=[1, EPOCHS])
    plan = validate(config)
    data.prepare("synthetic", tmp / "data", synthetic=config["data"]["synthetic"])
    return plan, {r.model: r for r in plan.runs}, tmp


def _write_cifar_c(folder, n):
    """Random images in CIFAR-C's published layout: labels.npy (5 n,), <name>.npy (5 n, 32, 32, 3)."""
    from vitprobe.data.cifar_c import CORRUPTIONS
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 10, n), 5).astype(np.uint8))
    for name in CORRUPTIONS:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    return folder


def _train_cmd(plan, run, out, device):
    ckpts = [a for e in (1, EPOCHS) for a in ("--checkpoint", f"{e}={out}/e{e}.pt")]
    return [sys.executable, "-m", "vitprobe", "train", "--spec", json.dumps(plan.train_spec(run)), "--device", device,
            "--no-progress", "--state-dir", str(out / "state"), *ckpts, "--log", str(out / "log.parquet")]


@pytest.fixture(scope="module")
def rehearsed(setup):
    """Both models trained with `--device rehearse` and, for comparison, the ViT on the plain CPU."""
    plan, runs, tmp = setup
    for name, device in (("resnet_demo", "rehearse"), ("vit_demo", "rehearse"), ("vit_demo", "cpu")):
        done = subprocess.run(_train_cmd(plan, runs[name], tmp / f"{name}-{device}", device), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return setup


def _weights(folder):
    return checkpoint.load(folder / f"e{EPOCHS}.pt")["model"]


def test_both_models_train_with_every_trick_on(rehearsed):
    plan, runs, tmp = rehearsed
    for name in ("resnet_demo", "vit_demo"):
        log = pd.read_parquet(tmp / f"{name}-rehearse/log.parquet")
        assert len(log) == EPOCHS and np.isfinite(log["train_loss"]).all() and log["test_error"].between(0, 100).all()
        weights = _weights(tmp / f"{name}-rehearse").values()
        assert all(torch.isfinite(v).all() for v in weights if v.is_floating_point())
    # bf16 autocast was on: the rehearsal's weights are not the float32 run's
    plain, rehearsal = _weights(tmp / "vit_demo-cpu"), _weights(tmp / "vit_demo-rehearse")
    assert any(not torch.equal(plain[k], rehearsal[k]) for k in plain)


def test_compile_captured_the_training_step(setup, tmp_path):
    import torch._dynamo

    from vitprobe.training.loop import train
    plan, runs, _ = setup
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    spec = copy.deepcopy(plan.train_spec(runs["vit_demo"]))
    spec["train"].update(epochs=1, warmup_epochs=0)
    train(spec, state_dir=tmp_path / "state", checkpoints={}, log_path=tmp_path / "log.parquet",
          device=resolve("rehearse"), progress=False)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    torch._dynamo.reset()


def test_a_killed_rehearsal_resumes_bit_identical(rehearsed, tmp_path):
    plan, runs, tmp = rehearsed
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_train_cmd(plan, runs["vit_demo"], cut, "rehearse"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    import time
    t0 = time.time()
    while not (cut / "state/resume.pt").exists():  # after the first epoch's state is saved
        assert proc.poll() is None, "the rehearsal finished before it could be killed: " + proc.stderr.read()[-2000:]
        assert time.time() - t0 < 300
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (cut / f"e{EPOCHS}.pt").exists()
    resumed = subprocess.run(_train_cmd(plan, runs["vit_demo"], cut, "rehearse"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0 and "resuming at epoch" in resumed.stderr, resumed.stderr[-3000:]
    ref, again = _weights(tmp / "vit_demo-rehearse"), _weights(cut)
    assert ref.keys() == again.keys()
    for k in ref:
        assert torch.equal(ref[k], again[k]), f"{k} differs after the resume"


def _probe(plan, run, ckpt, probe, out, device):
    outs = {t: out / f"{t}.parquet" for t in catalog.tables_of(probe)}
    assert main([probe, "--spec", json.dumps(plan.probe_spec(run, probe)), "--device", device,
                 "--checkpoint", str(ckpt), *[a for t, p in outs.items() for a in ("--out", f"{t}={p}")]]) == 0
    tables = {t: pd.read_parquet(p) for t, p in outs.items()}
    return {t: df.drop(columns=[c for c in df.columns if c in IGNORED]) for t, df in tables.items()}


@pytest.mark.parametrize("model", ["resnet_demo", "vit_demo"])
def test_every_probe_runs_on_a_rehearsed_checkpoint_and_the_exact_ones_in_float32(rehearsed, tmp_path, model):
    plan, runs, tmp = rehearsed
    ckpt = tmp / f"{model}-rehearse/e{EPOCHS}.pt"
    for probe in PROBES:
        rehearsal = _probe(plan, runs[model], ckpt, probe, tmp_path / f"{probe}-rehearse", "rehearse")
        for table, df in rehearsal.items():
            assert len(df), (probe, table)
            numbers = df.select_dtypes("number")
            assert np.isfinite(numbers.to_numpy(dtype=float)[~numbers.isna().to_numpy()]).all(), (probe, table)
        if catalog.PROBES[probe].exact:  # float32: bit-identical to the plain CPU
            plain = _probe(plan, runs[model], ckpt, probe, tmp_path / f"{probe}-cpu", "cpu")
            for table in rehearsal:
                pd.testing.assert_frame_equal(rehearsal[table], plain[table], check_exact=True, obj=f"{probe} {table}")


def test_an_exact_probe_under_autocast_would_be_caught(rehearsed, tmp_path, monkeypatch):
    """The comparison above can fail: with `exact` off, the eval probe's logits come from
    bf16 autocast and its per-image NLL moves."""
    plan, runs, tmp = rehearsed
    ckpt = tmp / f"vit_demo-rehearse/e{EPOCHS}.pt"
    plain = _probe(plan, runs["vit_demo"], ckpt, "eval", tmp_path / "cpu", "cpu")
    module = catalog.module_of("eval")
    import dataclasses
    monkeypatch.setattr(module, "PROBE", dataclasses.replace(module.PROBE, exact=False))
    leaked = _probe(plan, runs["vit_demo"], ckpt, "eval", tmp_path / "leaked", "rehearse")
    assert not leaked["eval_images"]["nll"].equals(plain["eval_images"]["nll"])


def test_rehearse_is_a_config_device(setup):
    plan, _, _ = setup
    config = copy.deepcopy(plan.config)
    config["device"] = "rehearse"
    validate(config)
    config["device"] = "tpu"
    with pytest.raises(Exception, match="device"):
        validate(config)

