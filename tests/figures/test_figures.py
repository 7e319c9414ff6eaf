"""Figures drawn from hand-built tables: the plotted data is what the tables say."""

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vitprobe.figures
from vitprobe import results
from vitprobe.catalog import FIGURES
from vitprobe.figures import hessian as fig_hessian

RUN = {"dataset": "synthetic", "kernel_size": 0, "seed": 0}


def _write(tmp_path, model, fraction, values, epoch=1):
    path = tmp_path / f"{model}_{fraction}_{epoch}.parquet"
    rows = pd.DataFrame({"batch": np.arange(len(values)) // 2, "rank": np.arange(len(values)) % 2 + 1,
                         "eigenvalue": values, "batch_size": 16, "method": "lanczos", "n_hvp": 10})
    results.write_run_table(rows, "hessian", path, run={**RUN, "model": model, "fraction": fraction},
                            epoch=epoch, config_hash="h")
    return str(path)


def test_hessian_figure_plots_the_table(tmp_path):
    files = [_write(tmp_path, "cnn", 1.0, [8.0, -2.0, 4.0, 2.0]),
             _write(tmp_path, "vit", 1.0, [10.0, -6.0, -4.0, 2.0]),
             _write(tmp_path, "vit", 1.0, [99.0, 99.0], epoch=5)]  # another epoch: ignored
    spec = {"epoch": 1, "bins": 4, "series": [
        {"label": "CNN", "model": "cnn"}, {"label": "ViT", "model": "vit", "fraction": 1},
        {"label": "ViT small data", "model": "vit", "fraction": "1/16"}]}
    out = tmp_path / "fig.pdf"
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate(files, "hessian")}, out)
    assert out.read_bytes()[:5] == b"%PDF-"
    ax_neg, ax_pos = fig.axes[:2]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["CNN (NEP 25.0%, APE 4.67)", "ViT (NEP 50.0%, APE 6)"]
    # densities over the whole spectrum: the areas of both panels add up to 1 per series
    for i in range(2):
        area = sum(np.nansum(ax.patches[i].get_data().values * np.diff(ax.patches[i].get_data().edges))
                   for ax in (ax_neg, ax_pos))
        assert area == pytest.approx(1.0)
    assert "no results yet for: ViT small data" in [t.get_text() for t in fig.texts]


def test_hessian_figure_without_negative_eigenvalues(tmp_path):
    files = [_write(tmp_path, "cnn", 1.0, [8.0, 2.0, 4.0, 2.0])]
    spec = {"epoch": 1, "series": [{"label": "CNN", "model": "cnn"}]}
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate(files, "hessian")}, tmp_path / "fig.pdf")
    ax_neg = fig.axes[0]
    assert [t.get_text() for t in ax_neg.texts] == ["none"]
    assert ax_neg.get_xlim()[0] == pytest.approx(-0.4)  # 5% of the largest magnitude


def test_hessian_figure_with_no_data_at_all_still_draws(tmp_path):
    spec = {"epoch": 1, "series": [{"label": "CNN", "model": "cnn"}]}
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate([], "hessian")}, tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").exists()
    assert "no results yet for: CNN" in [t.get_text() for t in fig.texts]


def test_plot_reads_tables_by_name_and_writes_every_format(tmp_path):
    """`vitprobe plot --table NAME=PATH ... --out a.pdf --out a.png`: files are grouped by the
    name given, never by their file name; each output's format follows its suffix."""
    from pathlib import Path

    from vitprobe.cli import main
    files = [_write(tmp_path, "cnn", 1.0, [8.0, -2.0, 4.0, 2.0]), _write(tmp_path, "vit", 1.0, [10.0, -6.0])]
    renamed = [Path(f).rename(tmp_path / f"part{i}.parquet") for i, f in enumerate(files)]  # names say nothing
    spec = json.dumps({"experiments": ["x"], "epoch": 1, "series": [{"label": "CNN", "model": "cnn"}]})
    outs = [tmp_path / "f.pdf", tmp_path / "f.png", tmp_path / "f.svg"]
    args = ["plot", "--figure", "fig_hessian", "--spec", spec,
            *[a for f in renamed for a in ("--table", f"hessian={f}")]]
    assert main(args + [a for o in outs for a in ("--out", str(o))]) == 0
    assert outs[0].read_bytes()[:5] == b"%PDF-" and outs[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in outs[2].read_bytes()[:500]
    assert main(args[:-2] + ["--table", f"eval={renamed[0]}", "--out", str(outs[0])]) == 2  # not a table it reads


def _imports(path: Path, package: str = "vitprobe.figures") -> set[str]:
    """Every module an `import` in the file may name: `from a import b` names a and a.b."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def test_figure_modules_import_no_other_figure_module():
    """The figures are a flat wing: a figure module imports the shared helpers, never another
    figure module (only the dispatcher, figures/__init__.py, names them), nor the run plan."""
    figure_modules = {f.module for f in FIGURES.values()}
    files = [p for p in sorted(Path(vitprobe.figures.__file__).parent.glob("*.py")) if p.name != "__init__.py"]
    assert {f"vitprobe.figures.{p.stem}" for p in files} >= figure_modules
    forbidden = figure_modules | {"vitprobe.config.plan"}
    found = {p.name: sorted(_imports(p) & forbidden) for p in files}
    assert {k: v for k, v in found.items() if v} == {}
