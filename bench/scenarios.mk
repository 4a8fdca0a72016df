# Scenario suite wall time with 1/2/4 workers, unplug confirmation latency.
.PHONY: bench-scenarios
bench-scenarios: lab-up drivers-linux
	$(PY) bench/scenarios/run.py

bench:: bench-scenarios
