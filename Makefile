# Set-up and the two main jobs. `make demo` and `make test` each create .venv and install everything first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is installed before the project: basicsr 1.4.2 exists only as a source release whose setup.py wants torch
# while it builds, so the project is installed with --no-build-isolation against the torch already in .venv
# (otherwise pip would fetch a second torch into a throw-away build environment).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SCALE ?= 2
STUDY ?= options/compare/san_ablation_x2.yml

# What tests/test_slurm_launcher.py needs for its private one-node cluster (tools/slurm_cluster.py).
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
SLURM_COMMANDS := sinfo slurmctld slurmd munged

.PHONY: install test test-fast lint format demo compare clean slurm-packages

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'setuptools>=64' wheel cython numpy $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test]'
	touch $@

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint slurm-packages
	$(PY) -m pytest

# Installs SLURM and munge when running as root with apt-get (CI) and a command is missing; otherwise does nothing,
# and the SLURM tests skip (or fail under CI=true).
slurm-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		for cmd in $(SLURM_COMMANDS); do \
			PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null 2>&1 || { missing=1; break; }; \
		done; \
		if [ -n "$$missing" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SLURM_PACKAGES); \
		fi; \
	fi

test-fast: install
	$(PY) -m pytest -m 'not slow'

demo: install
	$(PY) tools/demo.py --scale $(SCALE)

compare: install
	$(PY) tools/compare.py -opt $(STUDY)

clean:
	rm -rf $(VENV) build *.egg-info
