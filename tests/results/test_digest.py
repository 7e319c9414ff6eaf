"""The README's demo numbers: the paper's claims checked on hand-built tables, and the README
block they replace."""

import math

import pandas as pd
import pytest

from vitprobe import digest
from vitprobe.errors import VitprobeError


def _row(model, kernel=0, fraction=1.0, epoch=6, **values):
    return {"model": digest.DEMO[model], "kernel_size": kernel, "fraction": fraction, "seed": 0, "epoch": epoch,
            **values}


def _tables(vit_error=40.0, nep_vit_warmup=0.3):
    ev = pd.DataFrame([_row("cnn", error=20.0), _row("vit", error=vit_error), _row("vit", fraction=1 / 16, error=70.0),
                       _row("lmsa", 3, error=30.0), _row("lmsa", 8, error=35.0), _row("preact", error=25.0),
                       _row("alternet", error=24.0)])
    hs = pd.DataFrame([_row("cnn", epoch=1, nep=0.1), _row("vit", epoch=1, nep=nep_vit_warmup),
                       _row("vit", epoch=6, nep=0.2), _row("vit", fraction=1 / 16, epoch=6, nep=0.4),
                       _row("vit", epoch=0, nep=0.9)])  # epoch 0 is initialization, not the end of warmup
    fo = pd.DataFrame([_row(m, map_index=i, freq=f, log_amplitude=a, high_freq_delta=last)
                       for m, amps in (("cnn", (-4.0, -1.0)), ("vit", (-3.0, -5.0)))
                       for i, last in enumerate(amps) for f, a in ((0.0, 0.0), (0.5, last / 2), (0.75, last))])
    ro = pd.DataFrame([_row(m, freq=f, delta_accuracy=d, n_images=500) for m, d in (("cnn", -4.0), ("vit", -1.0))
                       for f in (0.1, 0.5, 0.9)])
    return {"eval": ev, "hessian_summary": hs, "fourier": fo, "robustness": ro}


def test_claims_hold_on_tables_built_to_show_them():
    claims = digest._claims(_tables())
    assert all(ok for _, _, ok, _ in claims), [c for c in claims if not c[2]]
    text = {effect: numbers for effect, _, _, numbers in claims}
    assert text["CNN beats ViT on small data sets"] == "test error ResNet 20.0 %, ViT 40.0 %"
    assert text["MSAs reduce high-frequency signals, convs amplify them"].endswith("ViT -2.00, ResNet +3.00")
    assert "NEP at epoch 1: ViT 30 %, ResNet 10 %" in text[
        "ViT's Hessian has more negative eigenvalues than the CNN's at the end of warmup"]


def test_claims_that_fail_say_no():
    claims = {effect: ok for effect, _, ok, _ in digest._claims(_tables(vit_error=10.0, nep_vit_warmup=0.05))}
    assert not claims["CNN beats ViT on small data sets"]
    assert not claims["ViT's Hessian has more negative eigenvalues than the CNN's at the end of warmup"]
    assert claims["local MSA beats global MSA"]


def test_readme_block_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{digest.BEGIN}\nold numbers\n{digest.END}\noutro\n")
    digest.update_readme(readme, "new numbers")
    assert readme.read_text() == f"intro\n{digest.BEGIN}\nnew numbers\n{digest.END}\noutro\n"
    (tmp_path / "other.md").write_text("no block")
    with pytest.raises(VitprobeError, match="no <!-- digest:begin -->"):
        digest.update_readme(tmp_path / "other.md", "x")


def test_missing_results_are_one_line(tmp_path):
    with pytest.raises(VitprobeError, match="no eval.parquet, hessian_summary.parquet; run the pipeline first"):
        digest.digest(tmp_path)


def test_depth_change_skips_maps_without_a_high_frequency_value():
    nan = float("nan")
    maps = pd.DataFrame([_row("cnn", map_index=i, high_freq_delta=v) for i, v in enumerate((-4.0, -1.5, nan))]
                        + [_row("vit", map_index=i, high_freq_delta=nan) for i in range(3)])
    assert digest._depth_change(maps, "cnn") == pytest.approx(2.5)  # last map with a value: -1.5 - (-4.0)
    assert math.isnan(digest._depth_change(maps, "vit"))  # every map NaN
