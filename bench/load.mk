# Load engine bench (issue 3): iperf3, a C epoll echo server, a C streaming echo
# client and `lab load`, side by side on loopback. `make bench-load` alone, or `make bench`.
# Each figure is the median of LOAD_BENCH_REPS runs (default 5) with its min-max; goals
# (issue 13): >= 0.9x the C client in echo stream at 1, 8 and 64 connections, >= 0.8x in
# connect-echo-close. LOAD_BENCH_SECONDS, LOAD_BENCH_ONLY, LOAD_BENCH_PIN=1: see run_bench.py.

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
