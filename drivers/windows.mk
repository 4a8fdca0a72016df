# Windows drivers (issue 6): wskecho.sys, labtdi.sys (+ .inf, .cat) and labctl.exe,
# cross-built with mingw-w64, checked with pefile, test-signed with osslsigncode.
# Outputs: var/drivers/windows/ (see drivers/windows/README-section.md).
#
#   make drivers            build, check, sign and verify everything (also the Linux twins)
#   make drivers-windows    only the Windows part
#   make test-drivers-windows   the Wine smoke + emulation tests (tests/drivers)

WIN_OUT      := var/drivers/windows
WIN_OBJ      := $(WIN_OUT)/obj
WIN_CC       ?= x86_64-w64-mingw32-gcc
WIN_DLLTOOL  ?= x86_64-w64-mingw32-dlltool
WIN_TOOL     := $(PY) drivers/windows/tools/winbuild.py

# Kernel-safe code generation: freestanding, no red zone, no stack protector/probes,
# no CRT; warnings are errors.
WIN_KCFLAGS  := -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -Wno-unused-parameter \
                -ffreestanding -fno-builtin -mno-red-zone -fno-stack-protector \
                -fno-stack-check -fno-strict-aliasing -fno-common -fno-plt \
                -D_AMD64_ -DWINVER=0x0A00 -D_WIN32_WINNT=0x0A00 -DNTDDI_VERSION=0x0A000000 \
                -Idrivers/include -Idrivers/common
# Native subsystem, DriverEntry entry, relocatable (dynamic base), NX, no CRT. The
# shipped images are stripped (-s on their link lines); wskecho is linked a second time
# with its symbols into obj/wskecho.sym.sys (same .text layout: the link is
# deterministic), only to name the driver's frames in a Wine hang's backtraces.
WIN_KLDFLAGS := -nostdlib -nostartfiles -Wl,--subsystem,native -Wl,--entry,DriverEntry \
                -Wl,--dynamicbase -Wl,--enable-reloc-section -Wl,--nxcompat -Wl,--high-entropy-va \
                -Wl,--image-base,0x140000000 -Wl,--file-alignment,0x200 \
                -Wl,--section-alignment,0x1000 -Wl,--major-os-version,10 \
                -Wl,--major-subsystem-version,10 -Wl,--minor-subsystem-version,0 \
                -Wl,--gc-sections -Wl,--no-insert-timestamp
WIN_UCFLAGS  := -std=gnu11 -O2 -Wall -Wextra -Werror -Idrivers/include -Idrivers/common
WIN_ULDFLAGS := -Wl,--dynamicbase -Wl,--nxcompat -Wl,--high-entropy-va -s -static

WIN_COMMON_SRC := drivers/common/windows/labkern.c
WIN_HEADERS    := $(wildcard drivers/include/*.h drivers/common/*.h)
# Test hooks (tests/drivers builds deliberately broken labtdi variants from a copy of the
# sources): where labtdi.c comes from, and flags placed before the kernel flags.
LABTDI_SRC       ?= drivers/labtdi/windows/labtdi.c
WIN_EXTRA_CFLAGS ?=

.PHONY: drivers drivers-windows drivers-windows-build test-drivers-windows clean-drivers-windows

drivers:: drivers-windows

drivers-windows: setup drivers-windows-build
	$(WIN_TOOL) all --out $(WIN_OUT)

drivers-windows-build: $(WIN_OUT)/wskecho.sys $(WIN_OUT)/labtdi.sys $(WIN_OUT)/labctl.exe $(WIN_OUT)/labtdi.inf

$(WIN_OBJ)/lib%.a: drivers/windows/lib/%.def
	@mkdir -p $(@D)
	$(WIN_DLLTOOL) --machine i386:x86-64 --kill-at -d $< -l $@

WSKECHO_DEPS := drivers/wskecho/windows/wskecho.c $(WIN_COMMON_SRC) $(WIN_HEADERS) $(WIN_OBJ)/libnetio.a

$(WIN_OBJ)/wskecho.sym.sys: $(WSKECHO_DEPS)
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_KCFLAGS) drivers/wskecho/windows/wskecho.c $(WIN_COMMON_SRC) \
	    $(WIN_KLDFLAGS) -L$(WIN_OBJ) -lnetio -lntoskrnl -lhal -o $@

$(WIN_OUT)/wskecho.sys: $(WSKECHO_DEPS) $(WIN_OBJ)/wskecho.sym.sys
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_KCFLAGS) drivers/wskecho/windows/wskecho.c $(WIN_COMMON_SRC) \
	    $(WIN_KLDFLAGS) -s -L$(WIN_OBJ) -lnetio -lntoskrnl -lhal -o $@.unsigned
	$(WIN_TOOL) fixup $@.unsigned
	mv $@.unsigned $@

$(WIN_OUT)/labtdi.sys: $(LABTDI_SRC) $(WIN_COMMON_SRC) $(WIN_HEADERS) \
                       $(WIN_OBJ)/libtdi.a $(WIN_OBJ)/libndis.a
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_EXTRA_CFLAGS) $(WIN_KCFLAGS) -Idrivers/labtdi/windows $(LABTDI_SRC) $(WIN_COMMON_SRC) \
	    $(WIN_KLDFLAGS) -s -L$(WIN_OBJ) -ltdi -lndis -lntoskrnl -lhal -o $@.unsigned
	$(WIN_TOOL) fixup $@.unsigned
	mv $@.unsigned $@

$(WIN_OUT)/labtdi.inf: drivers/labtdi/windows/labtdi.inf
	@mkdir -p $(@D)
	cp $< $@

$(WIN_OUT)/labctl.exe: drivers/windows/labctl/labctl.c $(WIN_HEADERS)
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_UCFLAGS) $< $(WIN_ULDFLAGS) -ladvapi32 -o $@

test-drivers-windows: setup
	$(PY) -m pytest -p no:cacheprovider tests/drivers $(PYTEST_ARGS)

clean-drivers-windows:
	rm -rf $(WIN_OUT)

clean:: clean-drivers-windows

help::
	@echo "  drivers-windows   build and sign the Windows drivers (mingw-w64; var/drivers/windows/)"
	@echo "  drivers-windows-build  compile the Windows drivers without signing them"
	@echo "  test-drivers-windows   the drivers tier (tests/drivers)"
	@echo "  clean-drivers-windows  remove the Windows driver builds"
