# Host-side instruments: a round trip on the local host vs through a remote host's agent.
.PHONY: bench-instruments
bench-instruments: setup
	$(PY) bench/instruments/round_trip.py

bench:: bench-instruments

help::
	@echo "  bench-instruments instrument round trip, local vs through a host's agent (<= 1.2x)"
