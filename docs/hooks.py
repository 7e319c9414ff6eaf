"""mkdocs hook: the reference pages are generated from the code before every build."""
from pathlib import Path

from vitprobe.report import reference


def on_pre_build(config, **kwargs):
    reference.write(Path(config["docs_dir"]) / "reference")
