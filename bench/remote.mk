# A VM on a second hypervisor host vs the same VM locally (issue 12): `lab up` from down,
# SSH through the host's gateway vs direct, and the instrument round trips of
# bench/instruments/round_trip.py. Its own 1-VM labs bnl/bnr (state under var/bench-remote).
REMOTE_BENCH_OUT ?= artifacts/bench/remote.md
.PHONY: bench-remote
bench-remote: setup
	$(PY) bench/remote/run.py --out $(REMOTE_BENCH_OUT)

bench:: bench-remote

help::
	@echo "  bench-remote      remote VM vs local VM: lab up, SSH through the gateway, instruments (<= 1.2x)"
