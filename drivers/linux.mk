# Linux driver twins (kecho, labtdi) and labtdi's observer client (labtdiobs), built
# for the micro guest's kernel: the Debian 12 cloud kernel. `make drivers-linux`
# (or `make drivers`) writes
#   var/drivers/linux/kecho.ko, labtdi.ko,  the modules
#     labtdiobs.ko
#   var/drivers/linux/l2probe               static L2 echo probe (guest side; wire
#                                           format drivers/common/labl2echo.h)
#   var/drivers/linux/kernel-abi            the ABI they were built for
#   var/drivers/linux/<abi>/*.ko            the modules per ABI (the lab deploys the
#                                           ones matching the guest's `uname -r`)
# Sources are copied to var/drivers/linux/build/ so kbuild leaves the tree clean.
# Override LINUX_TWINS_ABI (e.g. 6.1.0-56-cloud-amd64) or LINUX_TWINS_KDIR.

# The kernel package of the lab's config ([image] kernel_package) decides the ABI.
LINUX_TWINS_META  ?= $(shell $(PY) -c "from lab.config import load_config; print(load_config('$(CONFIG)').image.kernel_package)" 2>/dev/null || echo linux-image-cloud-amd64)
LINUX_TWINS_ABI   ?= $(shell LINUX_TWINS_META=$(LINUX_TWINS_META) bash drivers/linux/kernel-abi.sh)
LINUX_TWINS_KDIR  ?= /usr/src/linux-headers-$(LINUX_TWINS_ABI)
LINUX_TWINS_OUT   := var/drivers/linux
LINUX_TWINS_BUILD := $(LINUX_TWINS_OUT)/build/$(LINUX_TWINS_ABI)
# <source dir under drivers/>:<module name>[,<module name>...] (one kbuild per dir)
LINUX_TWINS       := wskecho:kecho labtdi:labtdi,labtdiobs

.PHONY: drivers drivers-linux drivers-linux-clean

drivers:: drivers-linux

drivers-linux:
	@test -f "$(LINUX_TWINS_KDIR)/Makefile" || { \
	    echo "drivers-linux: no kernel headers at $(LINUX_TWINS_KDIR);" \
	         "install linux-headers-$(LINUX_TWINS_ABI) (make setup does)" >&2; exit 1; }
	@mkdir -p $(LINUX_TWINS_BUILD)
	@set -e; for pair in $(LINUX_TWINS); do \
	    src=$${pair%%:*}; mods=$$(echo $${pair##*:} | tr , ' '); \
	    dir=$(LINUX_TWINS_BUILD)/$$src; \
	    mkdir -p $$dir; \
	    cp -p $$(find drivers/$$src/linux -maxdepth 1 -type f) \
	        drivers/common/linux/*.h drivers/common/*.h $$dir/; \
	    echo "  KMOD    $$(echo $$mods | sed 's/\([^ ]*\)/\1.ko/g') ($(LINUX_TWINS_ABI))"; \
	    $(MAKE) -s -C $(LINUX_TWINS_KDIR) M=$(CURDIR)/$$dir W=1 modules >$$dir/build.log 2>&1 || \
	        { cat $$dir/build.log >&2; exit 1; }; \
	    if grep -iq 'warning' $$dir/build.log; then \
	        cat $$dir/build.log >&2; echo "drivers-linux: $$src built with warnings" >&2; exit 1; fi; \
	    mkdir -p $(LINUX_TWINS_OUT)/$(LINUX_TWINS_ABI); \
	    for mod in $$mods; do \
	        cp -p $$dir/$$mod.ko $(LINUX_TWINS_OUT)/$$mod.ko; \
	        cp -p $$dir/$$mod.ko $(LINUX_TWINS_OUT)/$(LINUX_TWINS_ABI)/$$mod.ko; \
	    done; \
	done
	@echo "  CC      l2probe (static)"
	@gcc -static -O2 -Wall -Wextra -Werror -Idrivers/common \
	    -o $(LINUX_TWINS_OUT)/l2probe drivers/linux/l2probe.c
	@echo "$(LINUX_TWINS_ABI)" >$(LINUX_TWINS_OUT)/kernel-abi
	@$(PY) -m lab.guests.twins_build stamp $(LINUX_TWINS_ABI)

drivers-linux-clean:
	rm -rf $(LINUX_TWINS_OUT)

clean:: drivers-linux-clean

help::
	@echo "  drivers           build every driver: drivers-linux and drivers-windows"
	@echo "  drivers-linux     build the Linux twins for the lab's kernel (var/drivers/linux/)"
	@echo "  drivers-linux-clean  remove the Linux twin builds"
