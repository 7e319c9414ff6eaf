"""The claims' verdicts on hand-built tables (each verdict at least once), the paired
bootstrap across models, role selection by architecture on config.yaml and the demo, and
the scorecard's runs beside the paper's numbers."""

import numpy as np
import pandas as pd
import pytest

from vitprobe import claims, stats
from vitprobe.config.load import load
from vitprobe.errors import ConfigError
from vitprobe.report import scorecard

ROLES = {"cnn": {"model": "c", "kernel_sizes": [0], "fractions": [1.0]},
         "vit": {"model": "v", "kernel_sizes": [0], "fractions": [1.0]}}


def _spec(only, roles=ROLES, **extra):
    return {"roles": roles, "only": only, "warmup_epoch": 1, "intervals": {"resamples": 1000}, **extra}


def _eval_images(model, wrong, n=1000, seed=0, epoch=6):
    """eval_images rows of one run: the images in `wrong` are misclassified."""
    correct = np.ones(n, dtype=bool)
    correct[list(wrong)] = False
    return pd.DataFrame({"run": f"x-{model}-k0-f1-s{seed}", "model": model, "kernel_size": 0, "fraction": 1.0,
                         "seed": seed, "epoch": epoch, "image": np.arange(n), "correct": correct})


CI = stats.Intervals(level=0.95, resamples=1000, seed=0)


def _score(tables, only, **kw):
    return claims.score(tables, _spec(only, **kw), CI).set_index("claim")


@pytest.mark.parametrize("cnn_wrong, vit_wrong, verdict", [
    (range(100), range(300), "shows"),            # 10 % vs 30 %
    (range(300), range(100), "contradicts"),      # 30 % vs 10 %
    (range(200), range(500, 705), "leans"),          # 20.0 % vs 20.5 %, on other images
    (range(200), range(500, 695), "leans against"),  # 20.0 % vs 19.5 %
])
def test_error_claim_verdicts(cnn_wrong, vit_wrong, verdict):
    t = {"eval_images": pd.concat([_eval_images("c", cnn_wrong), _eval_images("v", vit_wrong)])}
    row = _score(t, ["cnn_beats_vit"]).loc["cnn_beats_vit"]
    expected = 100 * (len(vit_wrong) - len(cnn_wrong)) / 1000
    assert row["value"] == pytest.approx(expected)
    assert row["verdict"] == verdict
    assert row["low"] <= row["value"] <= row["high"]


def test_models_on_the_same_images_are_compared_pairwise():
    """The ViT errs on the CNN's 100 images and on 10 more: the effect is exactly 1 pp, and the
    paired interval (only the 10 differing images vary) excludes 0, where two independent
    Wilson intervals of 10 % and 11 % (±1.9 pp each) would overlap."""
    t = {"eval_images": pd.concat([_eval_images("c", range(100)), _eval_images("v", range(110))])}
    row = _score(t, ["cnn_beats_vit"]).loc["cnn_beats_vit"]
    assert row["value"] == pytest.approx(1.0)
    assert row["verdict"] == "shows"
    assert 0.3 < row["low"] < 1.0 < row["high"] < 1.8
    assert "1000 test images" in row["method"]


def _hessian(model, negatives_per_batch, k=5, epoch=1, seed=0):
    rows = []
    for b, neg in enumerate(negatives_per_batch):
        values = [-1.0] * neg + [2.0] * (k - neg)
        rows += [{"run": f"x-{model}-k0-f1-s{seed}", "model": model, "kernel_size": 0, "fraction": 1.0, "seed": seed,
                  "epoch": epoch, "batch": b, "rank": r + 1, "eigenvalue": v} for r, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_nep_claim_bootstraps_over_mini_batches():
    # 6 batches: the ViT has 3 of 5 negative in every one (60 %), the CNN 0 or 1 (10 %)
    t = {"hessian": pd.concat([_hessian("v", [3] * 6), _hessian("c", [0, 1] * 3)])}
    row = _score(t, ["vit_more_negative_eigenvalues"]).loc["vit_more_negative_eigenvalues"]
    assert row["value"] == pytest.approx(50.0)
    assert row["verdict"] == "shows" and 40 <= row["low"] < 50 < row["high"] <= 60
    # 3 batches are too few for an interval (stats.MIN_UNITS): the effect stands, the verdict leans
    t = {"hessian": pd.concat([_hessian("v", [3] * 3), _hessian("c", [0, 1, 0])])}
    row = _score(t, ["vit_more_negative_eigenvalues"]).loc["vit_more_negative_eigenvalues"]
    assert np.isnan(row["low"]) and row["verdict"] == "leans"


def test_missing_roles_runs_and_epochs_are_na_and_say_what_is_needed():
    t = {"eval_images": _eval_images("c", range(10)), "hessian": _hessian("v", [3] * 6, epoch=6)}
    out = claims.score(t, _spec(["cnn_beats_vit", "gap_beats_class_token", "vit_more_negative_eigenvalues",
                                 "less_data_hurts_vit", "alternet_more_robust"]), CI).set_index("claim")
    assert (out["verdict"] == "n/a").all()
    assert "eval_images rows of v" in out.loc["cnn_beats_vit", "missing"]
    assert "a ViT with a global-average-pooling head" in out.loc["gap_beats_class_token", "missing"]
    assert "at the end of warmup (epoch 1" in out.loc["vit_more_negative_eigenvalues", "missing"]
    assert "at a fraction below 1" in out.loc["less_data_hurts_vit", "missing"]
    assert "AlterNet" in out.loc["alternet_more_robust", "missing"]


def test_two_part_claim_shows_only_when_both_parts_do():
    """Fig. 8b: MSA maps lower the high-frequency Δ log amplitude, MLP maps raise it. Maps
    embed, msa, mlp, msa, mlp; per image the value at the one high frequency."""
    def fourier(values):
        rows, meta = [], []
        for m, (kind, v) in enumerate(zip(["embed", "msa", "mlp", "msa", "mlp"], values)):
            meta.append({"run": "x-v-k0-f1-s0", "epoch": 6, "map_index": m, "kind": kind})
            for i in range(50):
                noise = 0.01 * ((i * 7919 + m * 104729) % 13 - 6)  # deterministic spread, mean 0 over 13
                rows += [{"run": "x-v-k0-f1-s0", "model": "v", "kernel_size": 0, "fraction": 1.0, "seed": 0,
                          "epoch": 6, "map_index": m, "image": i, "freq": f, "log_amplitude": a}
                         for f, a in ((0.0, 0.0), (0.75, v + noise))]
        return {"fourier_images": pd.DataFrame(rows), "fourier": pd.DataFrame(meta)}
    both = _score(fourier([-1.0, -2.0, -1.0, -2.0, -1.0]), ["vit_msa_lowers_mlp_raises_high_freq"])
    assert both.iloc[0]["value"] == pytest.approx(1.0, abs=0.02) and both.iloc[0]["verdict"] == "shows"
    # the MSAs lower it, but the MLPs lower it too: the smaller part (-1) is the effect
    one = _score(fourier([-1.0, -2.0, -3.0, -4.0, -5.0]), ["vit_msa_lowers_mlp_raises_high_freq"])
    assert one.iloc[0]["value"] == pytest.approx(-1.0, abs=0.02) and one.iloc[0]["verdict"] == "contradicts"


def test_roles_are_found_by_architecture_on_the_paper_grid_and_the_demo():
    for path in ("config.yaml", "profiles/demo/demo.yaml"):
        config, plan = load(path)
        roles = claims.resolve_roles(plan)
        assert set(roles) == set(claims.ROLES), path
        assert any(f < 1 for f in roles["vit"]["fractions"]) and len(roles["lmsa"]["kernel_sizes"]) >= 2
        assert config["train"]["warmup_epochs"] in config["probes"]["hessian"]["epochs"]
        assert {r for c in claims.CLAIMS.values() for r in c.roles} <= set(roles)
    config, plan = load("config.yaml")
    roles = claims.resolve_roles(plan)
    assert roles["cnn"]["model"] == "resnet50_cifar"  # the first configured of the two ResNets
    assert roles["cnn"]["candidates"] == ["resnet50_cifar", "resnet18_cifar"]
    assert roles["gap"]["model"] == "vit_ti_gap_cifar" and roles["lmsa"]["kernel_sizes"] == [3, 5, 8]
    _, demo = load("profiles/demo/demo.yaml")
    demo_roles = claims.resolve_roles(demo)
    assert demo_roles["gap"] == {**demo_roles["gap"], "model": "lmsa_demo", "kernel_sizes": [8]}  # 8x8 window, 8x8 grid


def test_roles_do_not_depend_on_model_names(tmp_path):
    text = open("profiles/demo/demo.yaml").read()
    for old, new in [("resnet_demo", "mycnn"), ("vit_demo", "myvit")]:
        text = text.replace(old, new)
    (tmp_path / "c.yaml").write_text(text)
    _, plan = load(tmp_path / "c.yaml")
    roles = claims.resolve_roles(plan)
    assert roles["cnn"]["model"] == "mycnn" and roles["vit"]["model"] == "myvit"


@pytest.mark.parametrize("override, message", [
    ({"claims": {"only": ["no_such_claim"]}}, "claims.only: unknown claim 'no_such_claim'; allowed: cnn_beats_vit"),
    ({"claims": {"roles": {"transformer": "vit_demo"}}}, "claims.roles: unknown role 'transformer'; allowed: cnn"),
    ({"claims": {"roles": {"cnn": "resnet_other"}}}, "claims.roles.cnn: 'resnet_other' is not a model of the "
                                                      "experiments"),
    ({"claims": {"roles": {"cnn": "vit_demo"}}}, "claims.roles.cnn: 'vit_demo' (vit_ti_cifar) is not a CNN"),
])
def test_bad_claims_config_is_one_line_before_any_job(override, message):
    with pytest.raises(ConfigError) as err:
        load("profiles/demo/demo.yaml", {"claims": override["claims"]})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_runs_beside_the_paper_numbers():
    """ResNet-50 at 17.50 % on 10 000 test images: Wilson [16.77, 18.26] holds the paper's
    17.26; NLL_train 2.30 ± 1.96·0.01 does not hold 2.09. An alias with kwargs is not the
    paper's model and gets no paper value."""
    ev = pd.DataFrame([
        {"model": "resnet50_cifar", "kernel_size": 0, "fraction": 1.0, "seed": 0, "epoch": 305, "error": 17.5,
         "error_low": 16.77, "error_high": 18.26, "nll_train": 2.30, "nll_train_low": 2.2804, "nll_train_high": 2.3196,
         "n_test": 10000, "n_train": 50000},
        {"model": "small", "kernel_size": 0, "fraction": 1.0, "seed": 0, "epoch": 6, "error": 20.0,
         "error_low": 18.0, "error_high": 22.0, "nll_train": 1.0, "nll_train_low": 0.9, "nll_train_high": 1.1,
         "n_test": 1000, "n_train": 5000},
    ])
    spec = {"dataset": "cifar100", "intervals": {}, "models": {
        "resnet50_cifar": {"arch": "resnet50_cifar", "kwargs": {}},
        "small": {"arch": "resnet50_cifar", "kwargs": {"widths": [8, 16, 32, 64]}}}}
    runs = scorecard.runs_vs_paper({"eval": ev}, spec, CI)
    r50 = runs[runs["model"] == "resnet50_cifar"].set_index(["metric", "paper_figure"])
    assert r50.loc[("error", "Fig. 5a"), "paper_value"] == 17.26
    assert r50.loc[("error", "Fig. 5a"), "difference"] == pytest.approx(0.24)
    assert r50.loc[("error", "Fig. 5a"), "paper_inside"]
    assert not r50.loc[("nll_train", "Fig. 5a"), "paper_inside"]
    small = runs[runs["model"] == "small"]
    assert (small["paper_figure"] == "").all() and set(small["metric"]) == {"error", "nll_train"}
    # two seeds: mean, sd and the t-interval over seeds
    two = pd.concat([ev[:1], ev[:1].assign(seed=1, error=18.5)])
    row = scorecard.runs_vs_paper({"eval": two}, spec, CI).query("metric == 'error'").iloc[0]
    assert row["value"] == 18.0 and row["sd"] == pytest.approx(np.sqrt(0.5))
    assert row["high"] - row["value"] == pytest.approx(12.7062 * np.sqrt(0.5) / np.sqrt(2), abs=1e-3)
    assert row["method"] == "t-interval over 2 seeds"


def test_scorecard_markdown_counts_the_verdicts():
    t = {"eval_images": pd.concat([_eval_images("c", range(100)), _eval_images("v", range(300))])}
    rows = claims.score(t, _spec(["cnn_beats_vit", "gap_beats_class_token"]), CI)
    md = scorecard.markdown(rows, scorecard.runs_vs_paper({}, {"dataset": "cifar100", "models": {}}, CI))
    assert "1 show, 0 lean, 0 lean against, 0 contradict, 1 n/a (of 2 claims)" in md
    assert "| a CNN has a lower test error than a ViT on small data sets | Fig. 5a | **shows** | 20.0 [" in md
    assert "<table>" in scorecard.html(md)


def test_depth_rise_skips_maps_without_a_high_frequency():
    """The CNN's maps: high-frequency values -4.0 and -1.5, then a 2x2 map (frequency 0
    only): its rise is -1.5 - (-4.0) = 2.5; the ViT's -3 then -5 falls by 2: effect
    min(2.5, 2) = 2."""
    def rows(model, values):
        out = []
        for m, v in enumerate(values):
            for i in range(20):
                curve = [(0.0, 0.0)] + ([] if v is None else [(0.75, v + 0.001 * (i % 5 - 2))])
                out += [{"run": f"x-{model}-k0-f1-s0", "model": model, "kernel_size": 0, "fraction": 1.0, "seed": 0,
                         "epoch": 6, "map_index": m, "image": i, "freq": f, "log_amplitude": a} for f, a in curve]
        return out
    items = pd.DataFrame(rows("c", [-4.0, -1.5, None]) + rows("v", [-3.0, -5.0]))
    meta = items[["run", "epoch", "map_index"]].drop_duplicates().assign(kind="conv")
    row = _score({"fourier_images": items, "fourier": meta}, ["msa_low_pass_conv_high_pass"]).iloc[0]
    assert row["value"] == pytest.approx(2.0) and row["verdict"] == "shows"
    assert "CNN 2.5 [" in row["numbers"] and "ViT -2 [" in row["numbers"]


def test_seeds_are_averaged_and_held_fixed_below_five():
    """Two seeds per model: each model's error is the mean over its seeds, and the method says
    the seeds were not resampled (fewer than 5); with 5 seeds they are."""
    def runs(model, wrong_per_seed):
        return [_eval_images(model, w, seed=s) for s, w in enumerate(wrong_per_seed)]
    two = {"eval_images": pd.concat(runs("c", [range(100), range(120)]) + runs("v", [range(300), range(340)]))}
    row = _score(two, ["cnn_beats_vit"]).iloc[0]
    assert row["value"] == pytest.approx((30 + 34) / 2 - (10 + 12) / 2)
    assert "2 seeds per run (fixed: fewer than 5)" in row["method"]
    five = {"eval_images": pd.concat(runs("c", [range(100 + 5 * s) for s in range(5)]) +
                                     runs("v", [range(300 + 5 * s) for s in range(5)]))}
    row = _score(five, ["cnn_beats_vit"]).iloc[0]
    assert row["value"] == pytest.approx(20.0) and "and over seeds (5 per run)" in row["method"]


def _block_tables(model, blocks: dict, batches=6, epoch=6, seed=0):
    """hessian_blocks and hessian_blocks_summary of one run: blocks = {name: (kind, negatives
    per batch of k=4)}; hessian_blocks_density: every block a point mass at its own node
    (node = its index) on every batch; hessian_blocks_heterogeneity with a grid over them."""
    run = {"run": f"x-{model}-k0-f1-s{seed}", "model": model, "kernel_size": 0, "fraction": 1.0, "seed": seed,
           "epoch": epoch}
    eig, summ, dens = [], [], []
    for j, (name, (kind, neg)) in enumerate(blocks.items()):
        summ.append({**run, "block": name, "kind": kind, "msa": kind in ("qkv", "attn_proj", "attn_other")})
        for b in range(batches):
            eig += [{**run, "block": name, "batch": b, "rank": r + 1, "eigenvalue": v}
                    for r, v in enumerate([-1.0] * neg + [2.0] * (4 - neg))]
            dens.append({**run, "block": name, "batch": b, "node": float(j), "weight": 1.0})
    het = pd.DataFrame([{**run, "grid_low": -3.0, "grid_high": len(blocks) + 2.0, "grid_points": 401, "sigma": 0.05}])
    return {"hessian_blocks": pd.DataFrame(eig), "hessian_blocks_summary": pd.DataFrame(summ),
            "hessian_blocks_density": pd.DataFrame(dens), "hessian_blocks_heterogeneity": het}


def _concat(*parts):
    return {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}


def test_msa_block_nep_claim_pools_the_msa_blocks_against_the_mlp_blocks():
    # MSA blocks: 2 of 4 and 1 of 4 negative per batch (37.5 % pooled); MLP: 0 of 4
    vit = _block_tables("v", {"b0:qkv": ("qkv", 2), "b0:attn_proj": ("attn_proj", 1), "b0:mlp": ("mlp", 0),
                              "b0:norm": ("norm", 4)})
    row = _score(vit, ["vit_negative_eigenvalues_in_msa_blocks"]).loc["vit_negative_eigenvalues_in_msa_blocks"]
    assert row["value"] == pytest.approx(37.5)
    assert row["verdict"] == "shows" and "mini-batches" in row["method"]
    # the same share in both: no effect
    same = _block_tables("v", {"b0:qkv": ("qkv", 1), "b0:mlp": ("mlp", 1)})
    assert _score(same, ["vit_negative_eigenvalues_in_msa_blocks"]).loc[
        "vit_negative_eigenvalues_in_msa_blocks", "value"] == pytest.approx(0.0)


def test_heterogeneity_claim_compares_the_mean_js_distances():
    """The ViT's 3 blocks have densities at nodes 0, 1, 2 (disjoint at width 0.05·range: every
    pair at distance 1); the CNN's 3 blocks all sit at node 0 but one (distance 0, 0, 1 pairs:
    mean 2/3): the effect is 1/3, exactly, and every batch is alike, so the interval is tight."""
    vit = _block_tables("v", {f"b{i}:mlp": ("mlp", 0) for i in range(3)})
    cnn = _block_tables("c", {f"b{i}:conv": ("conv", 0) for i in range(3)})
    cnn["hessian_blocks_density"].loc[cnn["hessian_blocks_density"]["block"] != "b2:conv", "node"] = 0.0
    row = _score(_concat(vit, cnn), ["vit_blocks_more_heterogeneous"]).loc["vit_blocks_more_heterogeneous"]
    assert row["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert row["verdict"] == "shows" and row["low"] == pytest.approx(1 / 3, abs=1e-6)
