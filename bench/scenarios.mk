# Scenario suite wall time with 1/2/4 workers, unplug confirmation latency.
.PHONY: bench-scenarios
bench-scenarios: lab-up drivers-linux
	$(PY) bench/scenarios/run.py

bench:: bench-scenarios

help::
	@echo "  bench-scenarios   scenario suite wall time with 1/2/4 workers (needs the lab up)"
