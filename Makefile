# Driver Lab. `make setup` once, then `make lab-up`, `make test`, `make lab-down`.
# Components add targets through the `*.mk` fragments included at the bottom;
# `bench` and `clean` are double-colon rules so every fragment can extend them.

VENV    ?= .venv
PY      := $(VENV)/bin/python
LAB     := $(PY) -m lab
CONFIG  ?= lab.toml
PYTEST_ARGS ?=

.PHONY: setup images lab-up lab-down lab-status test test-unit test-lab lint bench clean help

help:
	@echo "setup       install Debian packages and the Python package into $(VENV)"
	@echo "images      build the micro Linux guest image (kernel, initramfs, golden disk)"
	@echo "lab-up      bring the lab up (networks, VMs, snapshots, inventory)"
	@echo "lab-status  show the lab's VMs and their NICs"
	@echo "lab-down    remove everything the lab created"
	@echo "test        run the test suite (unit, drivers, lab tiers)"
	@echo "lint        ruff and mypy --strict"
	@echo "bench       run the benchmarks and write tables under bench/results"

setup:
	@bash scripts/setup.sh

images: setup
	$(LAB) --config $(CONFIG) images

lab-up: setup
	$(LAB) --config $(CONFIG) up

lab-down:
	$(LAB) --config $(CONFIG) down

lab-status:
	$(LAB) --config $(CONFIG) status

test: setup
	$(PY) -m pytest -p no:cacheprovider tests $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

test-lab: setup
	$(PY) -m pytest -p no:cacheprovider tests/lab $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check lab tests
	$(VENV)/bin/mypy lab

bench:: setup

clean::
	rm -rf var/images

-include $(sort $(wildcard images/*.mk drivers/*.mk bench/*.mk))
