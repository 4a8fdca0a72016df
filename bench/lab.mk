# Lab provisioning benchmark: lab up wall time for 1/2/4 VMs vs bare QEMU boot.
.PHONY: bench-lab
bench-lab: setup
	$(PY) bench/lab/lab_up.py

bench:: bench-lab

help::
	@echo "  bench-lab         lab up wall time for 1/2/4 VMs vs bare QEMU boot"

# QEMU RSS per micro VM: the lab's memory settings vs QEMU's defaults (issue 13).
.PHONY: bench-rss
bench-rss: setup
	$(PY) bench/lab/rss.py

bench:: bench-rss

help::
	@echo "  bench-rss         QEMU RSS per micro VM after boot and load, lab settings vs QEMU defaults"
