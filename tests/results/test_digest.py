"""The README's demo numbers: the scorecard and the Hessian summary as Markdown, and the
README block they replace."""

import math

import pandas as pd
import pytest

from vitprobe.errors import VitprobeError
from vitprobe.report import digest, scorecard


def test_digest_is_the_scorecard_and_the_hessian_summary_with_intervals(tmp_path):
    claims = pd.DataFrame([
        {"claim": "cnn_beats_vit", "says": "a CNN has a lower test error than a ViT", "figure": "Fig. 5a",
         "effect": "ViT error − CNN error", "unit": "pp", "value": 20.0, "low": 15.0, "high": 25.0, "verdict": "shows",
         "numbers": "CNN 10 [8, 12], ViT 30 [27, 33]", "runs": "cnn: c, vit: v", "method": "bootstrap", "missing": "",
         "level": 0.95},
        {"claim": "alternet_more_robust", "says": "AlterNet is more robust", "figure": "Fig. 12b", "effect": "x",
         "unit": "pp", "value": math.nan, "low": math.nan, "high": math.nan, "verdict": "n/a", "numbers": "",
         "runs": "", "method": "", "missing": "needs table corruption_images", "level": 0.95}])
    claims.to_parquet(tmp_path / "scorecard.parquet")
    pd.DataFrame(columns=scorecard.RUN_COLUMNS).to_parquet(tmp_path / "scorecard_runs.parquet")
    pd.DataFrame([{"model": "v", "kernel_size": 0, "fraction": 0.0625, "seed": 0, "epoch": 1, "n_batches": 8,
                   "nep": 0.25, "nep_low": 0.1, "nep_high": 0.4, "ape": 3.0, "ape_low": 2.0, "ape_high": 4.0,
                   "trace_nll": 50.0, "trace_nll_low": 40.0, "trace_nll_high": 60.0, "interval_level": 0.95}]
                 ).to_parquet(tmp_path / "hessian_summary.parquet")
    text = digest.digest(tmp_path)
    assert "1 show, 0 lean, 0 lean against, 0 contradict, 1 n/a (of 2 claims)" in text
    assert "| AlterNet is more robust | Fig. 12b | **n/a** | – | needs table corruption_images |" in text
    assert "| v on 1/16 of the data | 0 | 1 | 8 | 25 % [10, 40] | 3 [2, 4] | 50 [40, 60] |" in text
    (tmp_path / "scorecard.parquet").unlink()
    with pytest.raises(VitprobeError, match="no scorecard.parquet; run the pipeline first"):
        digest.digest(tmp_path)
    with pytest.raises(VitprobeError, match="no scorecard.parquet, scorecard_runs.parquet, hessian_summary.parquet"):
        digest.digest(tmp_path / "empty")


def test_readme_block_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{digest.BEGIN}\nold numbers\n{digest.END}\noutro\n")
    digest.update_readme(readme, "new numbers")
    assert readme.read_text() == f"intro\n{digest.BEGIN}\nnew numbers\n{digest.END}\noutro\n"
    (tmp_path / "other.md").write_text("no block")
    with pytest.raises(VitprobeError, match="no <!-- digest:begin -->"):
        digest.update_readme(tmp_path / "other.md", "x")
