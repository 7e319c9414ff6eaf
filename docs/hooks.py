"""mkdocs hook: the reference pages are generated from the code before every build."""
from pathlib import Path

from vitprobe import docs


def on_pre_build(config, **kwargs):
    docs.write(Path(config["docs_dir"]) / "reference")
