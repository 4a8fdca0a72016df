# Driver Lab. `make setup` once, then `make lab-up`, `make test`, `make lab-down`.
# Components add targets through the `*.mk` fragments included at the bottom;
# `bench` and `clean` are double-colon rules so every fragment can extend them.

VENV    ?= .venv
PY      := $(VENV)/bin/python
LAB     := $(PY) -m lab
CONFIG  ?= lab.toml
PYTEST_ARGS ?=

.PHONY: setup images lab-up lab-down lab-status lab scenarios test test-unit test-lab lint bench clean help \
	selftest selftest-quick faults faults-quick
WORKERS ?= 4
SCENARIO_ARGS ?=
# Each scenario run gets a folder artifacts/<lab name>/runs/<run id>/ (JUnit, evidence,
# report.html; artifacts/<lab name>/latest points at the newest). JUNIT=FILE or
# REPORT_HTML=FILE put those two elsewhere; HISTORY_DB=FILE keeps the run history
# outside the lab's state directory (the nightly workflow does).
JUNIT ?=
REPORT_HTML ?=
HISTORY_DB ?=
E1000E_CONFIG := images/linux-micro/lab-e1000e.toml
TWOHOST_CONFIG := images/linux-micro/lab-twohost.toml
# the representative part of the suite that `make test` runs on the two-host lab
TWOHOST_TESTS := test_hot_unplug_replug or (test_unbind_rebind and not unplug) or test_load_every_nic or test_link_flap or test_nic_reset
# then, on the namespace host's VMs only, the scenarios whose echo clients the host
# agent holds open across steps (unload with live clients, sleep with open connections)
TWOHOST_REMOTE_TESTS := test_unload or test_sleep_resume
# The inventory of the lab named by CONFIG (exists while that lab is up).
INVENTORY = $(shell $(PY) -c "from lab.config import load_config; print(load_config('$(CONFIG)').state_dir / 'inventory.json')" 2>/dev/null)

# `help` is double-colon: every *.mk fragment adds the lines of its own targets
# (tests/unit/test_make_help.py fails when a target is missing from help or README).
help::
	@echo "Targets (CONFIG=$(CONFIG): the lab they act on):"
	@echo "  help              this list"
	@echo "  setup             install Debian packages and the Python package into $(VENV)"
	@echo "  images            build the micro Linux guest image (kernel, initramfs, golden disk)"
	@echo "  lab-up            bring the lab up (networks, VMs, snapshots, inventory)"
	@echo "  lab-status        show the lab's VMs and their NICs"
	@echo "  lab-down          remove everything the lab created"
	@echo "  lab               the main job: lab up, build the twins, scenario suite on WORKERS=$(WORKERS)"
	@echo "                    workers, report (artifacts/<lab>/latest/), history; the lab stays up"
	@echo "  scenarios         like lab, but a lab that was not up is brought down again afterwards"
	@echo "  test              unit, drivers and lab tiers, then scenarios + quick self-test on the"
	@echo "                    default lab, then scenarios on the e1000e lab"
	@echo "  test-unit         the unit tier (tests/unit)"
	@echo "  test-lab          the lab tier (tests/lab: real libvirtd + QEMU)"
	@echo "  lint              ruff over lab/ and tests/, mypy over lab/ and the test tiers"
	@echo "  selftest          mutation self-test: every mutant of the twins against the scenarios"
	@echo "  selftest-quick    the CI subset of the self-test (mutants marked Quick: yes)"
	@echo "  faults            the fault suite (tests/faults): each lab fault injected for real"
	@echo "  faults-quick      the fault-suite cases that boot no VM (CI)"
	@echo "  bench             every benchmark (bench-lab, bench-load, bench-scenarios)"
	@echo "  clean             remove built images and driver builds"

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
# inspection; `make lab-down` removes it). JUnit, evidence and report.html land in the
# run's folder, artifacts/<lab name>/runs/<run id>/ (`lab report` reads the latest).
lab: lab-up drivers-linux
	$(PY) -m pytest -p no:cacheprovider -n $(WORKERS) tests/scenarios \
		--lab-config $(CONFIG) $(if $(JUNIT),--junitxml=$(JUNIT)) $(SCENARIO_ARGS); \
		rc=$$?; $(LAB) --config $(CONFIG) report --html $(REPORT_HTML); \
		$(LAB) --config $(CONFIG) history $(if $(HISTORY_DB),--db $(HISTORY_DB)) --record; exit $$rc

# Everything: unit, drivers and lab tiers, then the scenario suite on the default
# lab (virtio + vmxnet3, cloud kernel) and on the e1000e lab (virtio + e1000e,
# generic kernel; without the fault-knob tests there: they prove the oracles, which do
# not depend on the NIC model, and run on the default lab), then a representative part
# on the two-host lab (2 VMs here, 2 on a namespace host: issue 12). A lab that is
# already up is used and left up; otherwise it is brought up and removed again.
# The Wine tests run in a pytest process of their own. Their stop hung in about one
# clean-clone run of three until the drivers' KMUTEX locks, which Wine 8 emulates
# wrongly, became event locks (README Known gaps); a failed Wine run is still run once
# more from scratch, the first run's JUnit kept beside it (.ci/run prints ci: FLAKY).
WINE_TESTS := tests/drivers/test_wskecho_wine.py
WINE_RUN = $(PY) -m pytest -p no:cacheprovider $(WINE_TESTS) \
	--junitxml=artifacts/junit-wine.xml $(PYTEST_ARGS)
# The unit tier runs on 2 workers (its tests share nothing); the drivers and lab tiers
# in one process (the lab tier's modules share run directories and namespaces).
test: setup
	$(PY) -m pytest -p no:cacheprovider -n 2 tests/unit \
		--junitxml=artifacts/junit-unit.xml $(PYTEST_ARGS)
	$(PY) -m pytest -p no:cacheprovider tests/drivers tests/lab \
		--ignore=$(WINE_TESTS) --junitxml=artifacts/junit-tiers.xml $(PYTEST_ARGS)
	$(WINE_RUN) || { mv artifacts/junit-wine.xml artifacts/junit-wine-first.xml; \
		echo "make test: the Wine tests failed: once more in a new Wine prefix (README Known gaps: Wine hang at unload); the first run: artifacts/junit-wine-first.xml"; \
		$(WINE_RUN); }
	$(MAKE) --no-print-directory faults-quick
	$(MAKE) --no-print-directory scenarios SELFTEST=--quick
	$(MAKE) --no-print-directory scenarios CONFIG=$(E1000E_CONFIG) \
		SCENARIO_ARGS="--ignore=tests/scenarios/test_fault_knobs.py $(SCENARIO_ARGS)"
	$(MAKE) --no-print-directory scenarios CONFIG=$(TWOHOST_CONFIG) \
		SCENARIO_ARGS="-k '$(TWOHOST_TESTS)' $(SCENARIO_ARGS)" \
		AGAIN="--lab-hosts host2 -k '$(TWOHOST_REMOTE_TESTS)' $(SCENARIO_ARGS)"

# SELFTEST=<args>: after the suite passes, run `lab selftest <args>` on the same lab.
# AGAIN=<pytest args>: after it passes, run the scenarios once more with these
# arguments instead of SCENARIO_ARGS, on the same lab (e.g. `--lab-hosts host2 -k sleep`).
SELFTEST ?=
AGAIN ?=
THEN_SELFTEST = $(if $(SELFTEST),&& $(LAB) --config $(CONFIG) selftest $(SELFTEST)) \
	$(if $(AGAIN),&& $(MAKE) --no-print-directory lab SCENARIO_ARGS="$(AGAIN)")
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

# The fault suite of issue 15 (tests/faults): each fault injected for real on the suite's
# own 1-VM labs (flt/flp/fls, state under var/flt*), then a table: fault, outcome, leaks,
# message. faults-quick: the cases that boot no VM (CI).
faults: setup
	$(PY) tests/faults/run.py $(FAULTS_ARGS)

faults-quick: setup
	$(PY) tests/faults/run.py --quick $(FAULTS_ARGS)

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
	$(VENV)/bin/mypy --strict tests/faults

bench:: setup

clean::
	rm -rf var/images

-include $(sort $(wildcard images/*.mk drivers/*.mk bench/*.mk))
