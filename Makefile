# vpclab — the commands a developer types. Each target sets up what it needs first.
VENV      := .venv
SAN_VENV  := .venv-sanitize
PY        := $(VENV)/bin/python
SAN_PY    := $(SAN_VENV)/bin/python
LIBASAN   := $(shell gcc -print-file-name=libasan.so)

.PHONY: setup build demo test unit sanitize fuzz fuzz-ci bench bench-e2e bench-apigw clean

# Quiet and quick when nothing it builds from changed (tools/setup.sh's stamp).
setup:
	@tools/setup.sh $(VENV)

# Rebuild the engine in place, whatever the stamp says (setup rebuilds it after a change
# to native/ by itself).
build:
	@VPCLAB_SETUP_FORCE=1 tools/setup.sh $(VENV)

# The AWS article's architecture (examples/article.yaml) as a lab with real traffic, then
# down (tools/demo.sh says more).
demo:
	@tools/demo.sh

test: setup
	$(PY) -m pytest tests

unit: setup
	$(PY) -m pytest tests/unit

# The tests that run native code once more, against the engine built with ASan and
# UBSan: the unit tests, and the forwarder on real veths (as root, floods included).
# Python itself is not instrumented, so the ASan runtime is preloaded; leak checking is
# off because CPython keeps memory until exit on purpose. Run from tests/ so that the
# source tree's dataplane/ (with its release build) is not the one imported.
SANITIZE_TESTS := unit integration/test_forwarder*.py
sanitize:
	@VPCLAB_SANITIZE=1 tools/setup.sh $(SAN_VENV)
	cd tests && LD_PRELOAD=$(LIBASAN) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 VPCLAB_EXPECT_SANITIZE=1 \
	  ../$(SAN_PY) -m pytest -p no:cacheprovider -q $(SANITIZE_TESTS)

# The engine under libFuzzer with ASan and UBSan (native/fuzz/README.md): FUZZ_RUNS inputs
# (10,000,000 by default; fuzz-ci: 1,000,000) or FUZZ_SECONDS (3,600: a bound, not a
# goal), whichever comes first — `make fuzz FUZZ_RUNS= FUZZ_SECONDS=300` fuzzes for a time
# instead — by FUZZ_WORKERS processes sharing one corpus (each runs its share of
# FUZZ_RUNS; their logs are build/fuzz/fuzz-N.log). Crashers land in build/fuzz/crashers/
# and stop the run. The flags below are the fast ones native/fuzz/README.md measured:
# no comparison tracing, no entropic schedule, inputs of at most 1 KB, a 4 MB ASan
# quarantine. clang-14 comes from setup (Debian's package; libclang-rt-14-dev holds libFuzzer).
CLANG        ?= clang-14
FUZZ_DIR     := build/fuzz
FUZZ_BIN     := $(FUZZ_DIR)/hp_fuzz
FUZZ_SOURCES := native/fuzz/hp_fuzz.c \
                $(filter-out native/hp_io%.c native/hp_bench%.c,$(wildcard native/hp_*.c))
FUZZ_SECONDS ?= 3600
FUZZ_RUNS    ?= 10000000
FUZZ_WORKERS ?= 2
FUZZ_FLAGS   := -g -O1 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
                -fno-strict-aliasing -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -fno-sanitize-coverage=trace-cmp \
                '-DHP_BUILD_INFO="fuzz,asan,ubsan"' -Inative

$(FUZZ_BIN): $(FUZZ_SOURCES) $(wildcard native/*.h) Makefile | setup
	@mkdir -p $(FUZZ_DIR)
	$(CLANG) $(FUZZ_FLAGS) $(FUZZ_SOURCES) -o $@

$(FUZZ_DIR)/seeds.stamp: native/fuzz/make_corpus.py $(wildcard tests/unit/*.py) | setup
	$(PY) native/fuzz/make_corpus.py $(FUZZ_DIR)/seeds
	@touch $@

fuzz: $(FUZZ_BIN) $(FUZZ_DIR)/seeds.stamp
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashers
	@rm -f $(FUZZ_DIR)/fuzz-*.log
	cd $(FUZZ_DIR) && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ASAN_OPTIONS=quarantine_size_mb=4 ./hp_fuzz \
	  $(if $(FUZZ_RUNS),-runs=$$(( $(FUZZ_RUNS) / $(FUZZ_WORKERS) ))) -max_total_time=$(FUZZ_SECONDS) \
	  -jobs=$(FUZZ_WORKERS) -workers=$(FUZZ_WORKERS) \
	  -max_len=1024 -entropic=0 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -artifact_prefix=crashers/ corpus seeds; \
	  rc=$$?; python3 ../../native/fuzz/summary.py fuzz-*.log; exit $$rc

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_RUNS=1000000

# The engine's micro-benchmarks (pytest-benchmark), then the end-to-end report below.
bench: setup
	$(PY) -m pytest bench --benchmark-columns=min,median,max,rounds -q -s
	$(PY) -m bench.e2e $(if $(QUICK),--quick)

# The forwarder end to end against the kernel's nftables NAT and plain routing on the
# same namespaces (bench/e2e): results.json, report.md and plots in
# bench/results/<timestamp>/. QUICK=1 runs every figure once, briefly.
bench-e2e: setup
	$(PY) -m bench.e2e $(if $(QUICK),--quick)

# API Gateway's front end against haproxy, alone and in a lab (bench/apigw): results.json,
# report.md and py-spy's samples in bench/results/apigw-<timestamp>/. QUICK=1: a smoke run.
bench-apigw: setup
	$(PY) -m bench.apigw $(if $(QUICK),--quick)

clean:
	rm -rf build *.egg-info dataplane/_native*.so dataplane/_native.c $(SAN_VENV) $(VENV)/.vpclab-setup
