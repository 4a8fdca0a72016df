# Lab provisioning benchmark (issue 13): lab up of 4 VMs booting, from a cold and from a
# warm template, and revert-to-ready, each beside a bare QEMU boot of the same guest.
.PHONY: bench-lab
bench-lab: setup
	$(PY) bench/lab/lab_up.py

bench:: bench-lab

help::
	@echo "  bench-lab         lab up (booting, cold and warm template) and revert-to-ready vs bare QEMU boot"

# QEMU RSS per micro VM: the lab's memory settings vs QEMU's defaults (issue 13).
RSS_BENCH_OUT ?= artifacts/bench/rss.md
.PHONY: bench-rss
bench-rss: setup
	RSS_BENCH_OUT=$(RSS_BENCH_OUT) $(PY) bench/lab/rss.py

bench:: bench-rss

help::
	@echo "  bench-rss         QEMU RSS per micro VM after boot and load, lab settings vs QEMU defaults"
