# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install vitprobe, run the offline demo pipeline (figures/*.pdf)
#   make test   create .venv if needed, install, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-results

install: $(STAMP)

# torch==2.14.1/torchvision==0.29.1 come from the local wheel cache on the project machines;
# elsewhere pip downloads them. The grep drops pip's noise about absent local index folders.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]' 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	touch $@

demo: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean-results:
	rm -rf results/runs results/*.parquet figures/*.pdf logs .snakemake
