"""The documentation: the generated reference pages hold every table column, probe, figure and
config key; every relative link of the README and of the pages points at a file that exists
(mkdocs build --strict checks the pages' links and anchors in CI: `make test`)."""

import re

from conftest import REPO

from vitprobe import catalog, claims, results
from vitprobe.config.load import schema
from vitprobe.report import reference as docs


def test_reference_pages_hold_every_column_probe_figure_and_key(tmp_path):
    written = {p.name: p.read_text() for p in docs.write(tmp_path)}
    assert sorted(written) == sorted(docs.PAGES)
    for table, columns in results.TABLES.items():
        section = written["tables.md"].split(f"\n## {table}\n")[1].split("\n## ")[0]
        own, _, bounds = section.partition("\nIntervals, in ")
        assert [line.split(" | ")[0].lstrip("| ") for line in own.splitlines() if line.startswith("| ")][1:] \
            == [c.name for c in columns], table
        assert [line.split(" | ")[0].lstrip("| ") for line in bounds.splitlines() if line.startswith("| ")][1:] \
            == [c.name for c in results.interval_columns(table)], table
    for claim in claims.CLAIMS:
        assert f"| `{claim}` |" in written["claims.md"]
    for probe in catalog.PROBES.values():
        assert f"| `{probe.name}` | {probe.help} |" in written["probes.md"]
    for figure in catalog.FIGURES.values():
        assert f"| `{figure.name}` | {figure.paper} | {figure.shows} |" in written["figures.md"]
    for key in [*schema()["properties"], "train.epochs", "probes.hessian.n_batches", "resources.train.mem_mb"]:
        assert f"| `{key}` |" in written["config.md"], key
    # a rewrite with unchanged text leaves the files alone (no rebuild loop under `mkdocs serve`)
    before = {name: (tmp_path / name).stat().st_mtime_ns for name in written}
    docs.write(tmp_path)
    assert before == {name: (tmp_path / name).stat().st_mtime_ns for name in written}


def test_relative_links_point_at_files():
    """Every relative link points at a file; the README's at files in the repository (the
    generated reference pages exist only after `make docs`, so only the docs site may link them)."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path = (page.parent / target).resolve()
            generated = path.parent == (REPO / "docs" / "reference").resolve() and path.name in docs.PAGES
            if (not path.exists() and not generated) or (generated and page.name == "README.md"):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken


def test_every_probe_is_in_the_api_as_its_modules_compute():
    from vitprobe import api

    for name in catalog.PROBES:
        assert getattr(api, name).__wrapped__ is catalog.measure_of(name).compute, name
