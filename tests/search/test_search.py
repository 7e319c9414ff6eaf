"""The build-up rule (vitprobe.search.walk) against hand-made cases, candidate naming, the
search's config checks and held-out split (vitprobe.config.plan.Plan, vitprobe.models.recipe), and the
step job (vitprobe.search.steps.step)."""

import json

import pytest
import torch

from vitprobe.config.load import validate
from vitprobe.errors import ConfigError, VitprobeError
from vitprobe.search import steps as search_steps
from vitprobe.search import walk as search

R50 = (3, 4, 6, 3)  # pre-activation ResNet-50: at most 1, 2, 3, 1 MSA blocks per stage
ZERO = (0, 0, 0, 0)
ALL = [4, 3, 2, 1]


def _walk(accs, layers=R50, start=ZERO, stages=ALL, budget=10):
    return search.walk(layers, start, stages, budget, accs)


def test_first_candidate_adds_an_msa_block_to_the_last_stage():
    w = _walk([70.0])
    assert [s.layout for s in w.steps] == [ZERO] and w.steps[0].kept and w.steps[0].stage == 0
    assert (w.next_layout, w.next_stage) == ((0, 0, 0, 1), 4)


def test_kept_candidate_in_a_full_stage_moves_to_the_stage_before():
    w = _walk([70.0, 71.0])  # stage 4 of 3 blocks holds one MSA block
    assert [s.kept for s in w.steps] == [True, True] and w.steps[1].best_before == 70.0
    assert (w.next_layout, w.next_stage) == ((0, 0, 1, 1), 3)


def test_kept_candidate_stays_in_its_stage():
    w = _walk([70.0, 71.0, 72.0])
    assert (w.next_layout, w.next_stage) == ((0, 0, 2, 1), 3)


def test_worse_candidate_is_dropped_and_the_search_moves_on_from_the_best():
    w = _walk([70.0, 71.0, 72.0, 71.5])
    assert [s.kept for s in w.steps] == [True, True, True, False]
    assert w.steps[3].layout == (0, 0, 2, 1) and w.steps[3].best_before == 72.0
    assert (w.next_layout, w.next_stage) == ((0, 1, 1, 1), 2)  # from the best (0, 0, 1, 1)


def test_a_tie_is_not_an_improvement():
    w = _walk([70.0, 70.0])
    assert not w.steps[1].kept
    assert (w.next_layout, w.next_stage) == ((0, 0, 1, 0), 3)


def test_stops_after_the_first_stage():
    # c1 of 3 blocks: one MSA block at most; kept, then no stage is left
    w = _walk([70.0, 69.0, 68.0, 67.0, 71.0])
    assert [s.layout for s in w.steps] == [ZERO, (0, 0, 0, 1), (0, 0, 1, 0), (0, 1, 0, 0), (1, 0, 0, 0)]
    assert [s.kept for s in w.steps] == [True, False, False, False, True]
    assert w.next_layout is None and "no stage left" in w.reason


def test_stops_at_the_budget():
    w = _walk([70.0, 71.0, 72.0], budget=2)
    assert w.next_layout is None and "budget of 2" in w.reason


def test_only_the_configured_stages_in_their_order_and_full_stages_skipped():
    w = search.walk((1, 2, 2, 2), (0, 0, 1, 0), [3, 4], 5, [50.0])
    assert (w.next_layout, w.next_stage) == ((0, 0, 1, 1), 4)  # c3 is full already
    w = search.walk((1, 2, 2, 2), (0, 0, 0, 0), [4, 3], 5, [50.0, 40.0, 60.0])
    assert [s.layout for s in w.steps] == [ZERO, (0, 0, 0, 1), (0, 0, 1, 0)]
    assert w.next_layout is None


def test_more_accuracies_than_steps_is_an_error():
    with pytest.raises(ValueError, match="stopped after"):
        _walk([70.0, 71.0, 72.0, 73.0], budget=2)


def test_candidate_names_round_trip():
    name = search.candidate_model("preact_demo", (0, 1, 1, 2))
    assert name == "preact_demo_msa0_1_1_2"
    assert search.parse_candidate("preact_demo", name) == (0, 1, 1, 2)
    assert search.parse_candidate("preact", name) is None
    assert search.parse_candidate("preact_demo", "preact_demo") is None


# ---- config ------------------------------------------------------------------------------
def _config(demo_config, **search_cfg):
    c = demo_config
    c["data"].update(dataset="synthetic", synthetic={"num_classes": 4, "train_per_class": 10, "test_per_class": 2,
                                                    "seed": 0})
    c["experiments"] = {"alternet": c["experiments"]["alternet"]}
    c["figures"] = {}
    c["probes"]["hessian_blocks"].pop("experiments")  # the demo's names an experiment left out here
    c["search"] = {"base": "preact_demo", **search_cfg}
    return c


def test_plan_accepts_candidates_and_holds_out_their_scoring_split(demo_config):
    plan = validate(_config(demo_config, stages=[4, 3], holdout=0.25, seed=1))
    s = plan.search
    assert (s["layers"], s["start"], s["stages"]) == ([1, 2, 2, 2], [0, 0, 0, 0], [4, 3])
    assert (s["budget"], s["epoch"]) == (10, 6)
    run = plan.run("synthetic-preact_demo_msa0_0_1_1-k0-f1-s1")
    assert plan.model_spec(run.model)["kwargs"]["msa_blocks"] == [0, 0, 1, 1]
    assert plan.train_spec(run)["data"]["holdout"] == {"fraction": 0.25, "seed": 1}
    assert "holdout" not in plan.train_spec(plan.runs[0])["data"]  # ordinary runs train on everything
    for bad in ("synthetic-preact_demo_msa0_0_2_0-k0-f1-s1",   # c3 of 2 blocks holds one MSA block
                "synthetic-preact_demo_msa0_0_1_1-k0-f1-s0",   # another seed
                "synthetic-preact_demo_msa0_1_1-k0-f1-s1"):    # three stages
        with pytest.raises(ValueError, match="not in the configured grid"):
            plan.run(bad)


def test_holdout_split_is_disjoint_from_the_candidates_training_set(demo_config, tmp_path):
    from vitprobe.data import splits as data
    c = _config(demo_config, holdout=0.2)
    c["data"]["root"] = str(tmp_path)
    plan = validate(c)
    data.prepare("synthetic", tmp_path, synthetic=c["data"]["synthetic"])
    spec = plan.train_spec(plan.search_run((0, 0, 0, 0)))
    train, held = data.training_split(spec), data.holdout_split(spec)
    full = data.load_split("synthetic", tmp_path, train=True)
    assert len(held.labels) == 4 * 2 and torch.bincount(held.labels).tolist() == [2] * 4  # 20 % of 10 per class
    assert len(train.labels) + len(held.labels) == len(full.labels)
    key = lambda imgs: {bytes(x.numpy()) for x in imgs}  # noqa: E731
    assert not key(train.images) & key(held.images)
    assert key(train.images) | key(held.images) == key(full.images)


@pytest.mark.parametrize("search_cfg, match", [
    ({"base": "resnet_demo"}, "search.base: 'resnet_demo' .* is not a pre-activation ResNet"),
    ({"base": "nope"}, "search.base: unknown model 'nope'"),
    ({"budget": 0}, "search.budget"),
    ({"stages": []}, "search.stages: empty, so there is no stage to search"),
    ({"stages": [5]}, "search.stages: stage 5 does not exist"),
    ({"base": "alternet_demo", "stages": [4, 3]}, "search.stages: no stage to search"),
    ({"epoch": 3}, "search.epoch: 3 is not a checkpoint epoch"),
])
def test_a_search_that_cannot_start_is_rejected(demo_config, search_cfg, match):
    with pytest.raises(ConfigError, match=match):
        validate(_config(demo_config, **search_cfg))


def test_buildup_figure_needs_a_search(demo_config):
    c = _config(demo_config)
    del c["search"]
    c["figures"] = {"fig_buildup": {"experiments": ["alternet"]}}
    with pytest.raises(ConfigError, match="figures.fig_buildup: draws the build-up search; add a search: block"):
        validate(c)


# ---- the step job ------------------------------------------------------------------------
def _score(tmp_path, s, layout, acc):
    run = search_steps._run_id(s, layout)
    path = tmp_path / f"{run}.json"
    path.write_text(json.dumps({"run": run, "epoch": 6, "accuracy": acc, "nll": 1.0, "n_images": 8,
                                "config_hash": "h"}))
    return path


def test_step_writes_the_decisions_and_the_next_candidate(demo_config, tmp_path):
    s = validate(_config(demo_config, stages=[4, 3])).search
    scores = [_score(tmp_path, s, (0, 0, 0, 0), 50.0), _score(tmp_path, s, (0, 0, 0, 1), 40.0)]
    state = search_steps.step(s, scores, tmp_path / "step_1.json")
    assert state == json.loads((tmp_path / "step_1.json").read_text())
    assert [(st["layout"], st["kept"]) for st in state["steps"]] == [([0, 0, 0, 0], True), ([0, 0, 0, 1], False)]
    assert state["next"] == {"layout": [0, 0, 1, 0], "stage": 3, "run": "synthetic-preact_demo_msa0_0_1_0-k0-f1-s0"}
    last = search_steps.step(s, scores + [_score(tmp_path, s, (0, 0, 1, 0), 55.0)], tmp_path / "step_2.json")
    assert last["next"] is None and last["steps"][2]["kept"]
    df = search_steps.table(tmp_path / "step_2.json", tmp_path / "search.parquet")
    assert df["msa_blocks"].tolist() == ["0,0,0,0", "0,0,0,1", "0,0,1,0"]
    assert df["kept"].tolist() == [True, False, True] and df["best_before"].isna().tolist() == [True, False, False]
    with pytest.raises(VitprobeError, match="not the last step"):
        search_steps.table(tmp_path / "step_1.json", tmp_path / "x.parquet")
    with pytest.raises(VitprobeError, match="scores out of order"):
        search_steps.step(s, scores[::-1], tmp_path / "bad.json")


def test_fig_buildup_draws_the_path(demo_config, tmp_path):
    from vitprobe.figures import buildup
    s = validate(_config(demo_config, stages=[4, 3])).search
    scores = [_score(tmp_path, s, (0, 0, 0, 0), 50.0), _score(tmp_path, s, (0, 0, 0, 1), 40.0),
              _score(tmp_path, s, (0, 0, 1, 0), 55.0)]
    search_steps.step(s, scores, tmp_path / "step_2.json")
    df = search_steps.table(tmp_path / "step_2.json", tmp_path / "search.parquet")
    fig = buildup.plot({}, {"search": df}, [tmp_path / "f.pdf"])
    ax = fig.axes[0]
    kept = next(line for line in ax.get_lines() if line.get_label() == "kept (current best)")
    assert list(kept.get_xdata()) == [0, 2] and list(kept.get_ydata()) == [50.0, 55.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0000", "0001", "0010"]
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
