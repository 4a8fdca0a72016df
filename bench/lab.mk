# Lab provisioning benchmark: lab up wall time for 1/2/4 VMs vs bare QEMU boot.
.PHONY: bench-lab
bench-lab: setup
	$(PY) bench/lab/lab_up.py

bench:: bench-lab

help::
	@echo "  bench-lab         lab up wall time for 1/2/4 VMs vs bare QEMU boot"
