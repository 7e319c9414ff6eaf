# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install vitprobe, run the offline demo pipeline (figures/demo/*.pdf)
#   make test   create .venv if needed, install, lint, build the docs, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo search-demo test install readme docs clean-demo

install: $(STAMP)

# torch==2.14.1/torchvision==0.29.1 come from the local wheel cache on the project machines;
# elsewhere pip downloads them. The grep drops pip's noise about absent local index folders.
# constraints.txt pins every package to the version the tests ran with; pyproject.toml has ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[workflow,test]' 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	touch $@

demo: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/demo

# The AlterNet build-up search (Fig. 12a) at demo size: results/search_demo, figures/search_demo.
search-demo: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/search

# After `make demo`: the README's demo numbers and images, regenerated from its results.
readme: $(STAMP)
	$(VENV)/bin/vitprobe digest --results results/demo --readme README.md --figures figures/demo --images docs/img

# The documentation (mkdocs, into site/): the reference pages are generated from the code first
# (docs/hooks.py); --strict fails the build on a broken link or anchor.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

# Lint first: ruff (pyflakes, pycodestyle, import order), snakefmt on the rules, the docs build.
# The tests on two workers, a file each at a time (its module fixtures built once), the slow
# end-to-end files first (tests/conftest.py): the Slurm test mostly waits on the cluster.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts docs/hooks.py
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules/*.smk
	$(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

# Removes the demos' outputs only (results/demo, figures/demo, and the search demo's); the paper's results stay.
clean-demo:
	rm -rf results/demo figures/demo results/search_demo figures/search_demo
