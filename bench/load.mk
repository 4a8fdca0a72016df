# Load engine bench (issue 3): iperf3, a C epoll echo server, a C streaming echo
# client and `lab load`, side by side on loopback. `make bench-load` alone, or `make bench`.

LOAD_BENCH_DIR := bench/load
LOAD_BENCH_BIN := $(LOAD_BENCH_DIR)/build
LOAD_CC        ?= gcc
LOAD_CFLAGS    ?= -O2 -Wall -Wextra
LOAD_BENCH_OUT ?= artifacts/bench/load.md
LOAD_BENCH_CMD  = $(PY) $(LOAD_BENCH_DIR)/run_bench.py --bin $(LOAD_BENCH_BIN) --out $(LOAD_BENCH_OUT)
LOAD_BENCH_EXE := $(LOAD_BENCH_BIN)/echo_server $(LOAD_BENCH_BIN)/echo_client

.PHONY: bench-load

$(LOAD_BENCH_BIN)/%: $(LOAD_BENCH_DIR)/%.c
	@mkdir -p $(LOAD_BENCH_BIN)
	$(LOAD_CC) $(LOAD_CFLAGS) -o $@ $<

bench-load: setup $(LOAD_BENCH_EXE)
	$(LOAD_BENCH_CMD)

bench:: setup $(LOAD_BENCH_EXE)
	$(LOAD_BENCH_CMD)

clean::
	rm -rf $(LOAD_BENCH_BIN)

help::
	@echo "  bench-load        load engine vs C reference on loopback: table in $(LOAD_BENCH_OUT), PASS/FAIL per goal"
