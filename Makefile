# Driver Lab. `make setup` once, then `make lab-up`, `make test`, `make lab-down`.
# Components add targets through the `*.mk` fragments included at the bottom;
# `bench` and `clean` are double-colon rules so every fragment can extend them.

VENV    ?= .venv
PY      := $(VENV)/bin/python
LAB     := $(PY) -m lab
CONFIG  ?= lab.toml
PYTEST_ARGS ?=

.PHONY: setup images lab-up lab-down lab-status lab scenarios test test-unit test-lab lint bench clean help \
	selftest selftest-quick
WORKERS ?= 4
SCENARIO_ARGS ?=
JUNIT ?= artifacts/junit.xml
# The HTML report beside the JUnit XML (artifacts/report.html for artifacts/junit.xml).
REPORT_HTML ?= $(subst junit,report,$(JUNIT:.xml=.html))
E1000E_CONFIG := images/linux-micro/lab-e1000e.toml
# The inventory of the lab named by CONFIG (exists while that lab is up).
INVENTORY = $(shell $(PY) -c "from lab.config import load_config; print(load_config('$(CONFIG)').state_dir / 'inventory.json')" 2>/dev/null)

help:
	@echo "setup       install Debian packages and the Python package into $(VENV)"
	@echo "images      build the micro Linux guest image (kernel, initramfs, golden disk)"
	@echo "lab-up      bring the lab up (networks, VMs, snapshots, inventory)"
	@echo "lab-status  show the lab's VMs and their NICs"
	@echo "lab-down    remove everything the lab created"
	@echo "lab         the main job: set up, lab up, scenario suite on WORKERS=4 workers, summary"
	@echo "test        run the test suite (unit, drivers, lab tiers), then the scenario suite"
	@echo "lint        ruff and mypy --strict"
	@echo "bench       run the benchmarks and write tables under bench/results"
	@echo "selftest    mutation self-test: every mutant of the twins against the scenarios, score table"
	@echo "selftest-quick  the CI subset of the self-test (mutants marked Quick: yes)"

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

# The main job: scenario suite in parallel against the lab of lab.toml (left up for
# inspection; `make lab-down` removes it). JUnit and evidence land in artifacts/.
lab: lab-up drivers-linux
	@rm -f $(dir $(INVENTORY))leases/leases.jsonl
	$(PY) -m pytest -p no:cacheprovider -n $(WORKERS) tests/scenarios \
		--lab-config $(CONFIG) --junitxml=$(JUNIT) $(SCENARIO_ARGS); \
		rc=$$?; $(LAB) --config $(CONFIG) report --junit $(JUNIT) --html $(REPORT_HTML); \
		$(LAB) --config $(CONFIG) history --record $(JUNIT); exit $$rc

# Everything: unit, drivers and lab tiers, then the scenario suite on the default
# lab (virtio + vmxnet3, cloud kernel) and on the e1000e lab (virtio + e1000e,
# generic kernel). A lab that is already up is used and left up; otherwise it is
# brought up and removed again afterwards, whatever the outcome.
test: setup
	$(PY) -m pytest -p no:cacheprovider tests/unit tests/drivers tests/lab \
		--junitxml=artifacts/junit-tiers.xml $(PYTEST_ARGS)
	$(MAKE) --no-print-directory scenarios SELFTEST=--quick
	$(MAKE) --no-print-directory scenarios CONFIG=$(E1000E_CONFIG) JUNIT=artifacts/junit-e1000e.xml

# SELFTEST=<args>: after the suite passes, run `lab selftest <args>` on the same lab.
SELFTEST ?=
THEN_SELFTEST = $(if $(SELFTEST),&& $(LAB) --config $(CONFIG) selftest $(SELFTEST))
scenarios: setup
	@if [ -f "$(INVENTORY)" ]; then $(MAKE) --no-print-directory lab $(THEN_SELFTEST); else \
		$(MAKE) --no-print-directory lab $(THEN_SELFTEST); rc=$$?; \
		$(LAB) --config $(CONFIG) down; exit $$rc; fi

# The mutation self-test (lab/selftest): builds each mutant of drivers/*/linux/mutants,
# runs the scenarios that must catch it on the lab of CONFIG (brought up and removed
# again if it is not up), prints the score table (artifacts/selftest/score.md).
SELFTEST_ARGS ?=
selftest: setup
	@if [ -f "$(INVENTORY)" ]; then $(LAB) --config $(CONFIG) selftest $(SELFTEST_ARGS); else \
		$(LAB) --config $(CONFIG) up || exit 1; \
		$(LAB) --config $(CONFIG) selftest $(SELFTEST_ARGS); rc=$$?; \
		$(LAB) --config $(CONFIG) down; exit $$rc; fi

selftest-quick:
	@$(MAKE) --no-print-directory selftest SELFTEST_ARGS="--quick $(SELFTEST_ARGS)"

test-unit: setup
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

test-lab: setup
	$(PY) -m pytest -p no:cacheprovider tests/lab $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check lab tests
	$(VENV)/bin/mypy lab
	$(VENV)/bin/mypy --strict tests/unit
	$(VENV)/bin/mypy --strict tests/lab
	$(VENV)/bin/mypy --strict tests/scenarios

bench:: setup

clean::
	rm -rf var/images

-include $(sort $(wildcard images/*.mk drivers/*.mk bench/*.mk))
