"""benchmarks/gpu_check.py --smoke: the GPU check's code runs on the CPU at tiny sizes and
writes every field a GPU run writes, so that it works the day a GPU is at hand."""

import json
import subprocess
import sys

from conftest import REPO


def test_the_smoke_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"device", "end_to_end", "train", "hessian", "featuremaps", "randaugment", "paper_pool"} <= set(result)
    assert result["smoke"] and result["device"].startswith("cpu")
    # train: every model, compile off and (ResNet-50, ViT-Ti) on, with the paper's figure beside it
    seen = {(r["model"], r["compile"]) for r in result["train"]}
    assert seen == {("resnet18_cifar", False), ("resnet50_cifar", False), ("resnet50_cifar", True),
                    ("vit_ti_cifar", False), ("vit_ti_cifar", True), ("vit_s_cifar", False)}
    assert all(r["img_s"] > 0 and r["peak_mb"] > 0 for r in result["train"])
    assert {r["paper_img_s"] for r in result["train"] if r["model"] == "resnet50_cifar"} == {320}
    # hessian: lanczos and block at each batches_at_once, both products, HVP counts
    for model in ("vit_ti_cifar", "resnet50_cifar"):
        rows = [r for r in result["hessian"] if r["model"] == model]
        assert {(r["method"], r["batches_at_once"], r["hvp"]) for r in rows} == {
            ("lanczos", 1, "double_backward"), ("block", 1, "double_backward"), ("block", 1, "forward_over_reverse"),
            ("block", 2, "double_backward"), ("block", 2, "forward_over_reverse")}
        assert all(r["mini_batches_per_s"] > 0 and r["hvps_per_mini_batch"] >= 5 for r in rows)
        pool = result["paper_pool"][model]
        assert pool["mini_batches"] == 3125 and pool["hours_per_checkpoint"] > 0
    assert {r["model"] for r in result["featuremaps"]} == {"resnet50", "vit_tiny_patch16_224"}
    ra = result["randaugment"]
    assert ra["images_equal"] == ra["images"] == 256 and ra["max_abs_diff"] == 0  # on the CPU: the same ops
    # end_to_end: both demo models trained by the CLI, every probe run on them; on the
    # rehearsal the exact probes equal the plain CPU's, so their difference is 0
    e2e = result["end_to_end"]
    assert [(r["model"], r["rc"]) for r in e2e["train"]] == [("resnet_demo", 0), ("vit_demo", 0)]
    assert {(r["model"], r["probe"]) for r in e2e["probes"] if r["rc"] == 0} == {
        (m, p) for m in ("resnet_demo", "vit_demo") for p in ("hessian", "hessian_blocks", "eval", "fourier",
                                                              "variance", "robustness", "landscape", "cka", "lesion")}
    exact = [r for r in e2e["probes"] if "max_rel_diff_vs_cpu" in r]
    assert {r["probe"] for r in exact} == {"hessian", "hessian_blocks", "eval", "fourier", "variance", "landscape",
                                           "cka", "lesion"}
    assert all(d == 0.0 for r in exact for d in r["max_rel_diff_vs_cpu"].values())
