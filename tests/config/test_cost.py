"""`vitprobe check-config --cost`: the hours a config's `resources` block requests, counted
by hand on tiny configs (job counts as the plan gives Snakemake its jobs)."""

import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from vitprobe.cli import main
from vitprobe.config.cost import estimate
from vitprobe.config.load import validate

RULES = {"hessian": "hessian", "eval": "evaluate"}


def _tiny(gpus=2) -> dict:
    """6 runs: 2 seeds x (a ResNet, a ViT with its own training limit, imported init weights);
    hessian at 2 epochs in 2 shards (45 min), eval at the last epoch (30 min, the default)."""
    return {
        "data": {"dataset": "synthetic", "root": "data", "download": False},
        "models": {"rn": {"arch": "resnet18_cifar", "kwargs": {"widths": [4, 4, 8, 8]}},
                   "vt": {"arch": "vit_ti_cifar", "kwargs": {"embed_dim": 16, "depth": 1, "num_heads": 2}},
                   "imp": {"arch": "resnet18_cifar", "kwargs": {"widths": [4, 4, 8, 8]}, "weights": "init"}},
        "experiments": {"x": {"models": ["rn", "vt", "imp"], "seeds": [0, 1]}},
        "train": {"epochs": 2, "warmup_epochs": 0, "checkpoint_epochs": [0, 2]},
        "probes": {"hessian": {"epochs": [0, 2], "n_batches": 4, "shards": 2}, "eval": {"epochs": [2]}},
        "resources": {"gpus": gpus, "cpus": 3,
                      "train": {"runtime": 60, "runtime_per_model": {"vt": 90}},
                      "probes": {"runtime": 30, "runtime_per_probe": {"hessian": 45}}},
    }


def _rows(cost):
    return [(r.rule, r.jobs, r.minutes, round(r.hours, 3)) for r in cost.rows]


def test_rows_and_total_by_hand():
    cost = estimate(validate(_tiny()), RULES)
    assert cost.unit == "GPU" and cost.per_job == 2
    assert _rows(cost) == [
        ("train", 2, 60, 4.0),                # rn x 2 seeds x 60 min x 2 GPUs
        ("train", 2, 90, 6.0),                # vt: runtime_per_model
        ("import_weights", 2, None, 0.0),     # local, no GPU
        ("hessian_shard", 20, 45, 30.0),      # (4 trained x 2 epochs + 2 imported x epoch 0) x 2 shards
        ("evaluate", 6, 30, 6.0),             # 4 trained x 1 epoch + 2 imported x epoch 0
    ]
    assert cost.total == pytest.approx(46.0)
    assert "vt" in cost.rows[1].note and "merge runs locally" in cost.rows[3].note


def test_gpus_0_counts_cpu_core_hours():
    cost = estimate(validate(_tiny(gpus=0)), RULES)
    assert cost.unit == "CPU-core" and cost.per_job == 3  # resources.cpus per job
    assert [round(r.hours, 3) for r in cost.rows] == [6.0, 9.0, 0.0, 45.0, 9.0]
    assert cost.total == pytest.approx(69.0)


def test_search_counts_the_most_candidates_it_can_try():
    config = yaml.safe_load((REPO / "profiles/search/search.yaml").read_text())
    config["probes"] = {"eval": {"epochs": [4]}}
    config["resources"] = {"train": {"runtime": 100}, "probes": {"runtime": 30, "runtime_per_probe":
                                                                 {"search_score": 20}}}
    # stages 4 and 3 of (1, 2, 2, 2) blocks hold one MSA block each: 2 candidates after the
    # base although the budget is 4
    cost = estimate(validate(config), RULES)
    assert _rows(cost) == [("train", 1, 100, round(100 / 60, 3)), ("evaluate", 1, 30, 0.5),
                           ("search: train", 3, 100, 5.0), ("search: search_score", 3, 20, 1.0),
                           ("search: evaluate", 3, 30, 1.5)]
    assert [r.at_most for r in cost.rows] == [False, False, True, True, True]
    assert "at most 2 more" in cost.rows[2].note
    config["search"]["budget"] = 1
    cost = estimate(validate(config), RULES)
    assert [r.jobs for r in cost.rows if r.at_most] == [2, 2, 2]


def test_cli_prints_an_aligned_table_with_an_upper_bound_header(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny()))
    assert main(["check-config", str(path), "--cost"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("cost:"))
    assert "upper bound" in out[header] and "not measured" in out[header] and "resubmits" in out[header]
    assert "2 GPUs per job" in out[header + 1]
    table = out[header + 2:]
    assert table[0].split()[:3] == ["rule", "jobs", "limit/job"]
    assert table[-1].split()[:3] == ["total", "30", "46.0"]  # cluster jobs: 4 train + 20 + 6
    ends = {line.rstrip().split()[0]: line for line in table}
    assert ends["hessian_shard"].split()[1:4] == ["20", "45", "30.0"]
    assert ends["import_weights"].split()[1:4] == ["2", "local", "0.0"]
    gpu_col = table[0].index("GPU-h") + len("GPU-h")
    assert all(line[gpu_col - 1] == "0" for line in table[1:]), "GPU-h right-aligned in one column"

    path.write_text(yaml.safe_dump(_tiny(gpus=0)))
    assert main(["check-config", str(path), "--cost"]) == 0
    out = capsys.readouterr().out
    assert "resources.gpus is 0: CPU-core-hours, 3 cores per job" in out and "CPU-core-h" in out


def test_cost_module_needs_no_torch():
    code = "import sys, vitprobe.config.cost; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
