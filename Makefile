# kin — the two commands a user needs are `make demo` and `make test`.
# Both install missing Debian packages first (scripts/install-deps), then
# build with CMake + Ninja (RelWithDebInfo).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build demo test test-unit test-kernel test-e2e test-asan fuzz soak bench format format-check clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Every test: unit (no root), kernel (root) and e2e (the real binary).
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L 'unit|kernel|e2e'

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit
test-kernel: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L kernel
test-e2e: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L e2e

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKIN_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L 'unit|kernel|e2e'

# libFuzzer targets (fuzz/) for kin's parsers, built with clang, ASan and
# UBSan in their own build directory, each run FUZZ_SECONDS on a copy of its
# seed corpus; fails if any crashed or hung. FUZZERS="yaml patch" runs some.
# clang and its libFuzzer runtime are installed here, not by `make deps`:
# only fuzzing needs them.
fuzz:
	@./scripts/install-deps --fuzz
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKIN_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz $(FUZZ_BUILD)

# The kill -9 soak (e2e/soak_test.cc): SOAK_TRIALS times, while Deployments
# roll and scale and pods and ConfigMaps churn, SIGKILL to kin serve (then
# `kin cluster start`), a node's shim server or its zygote at a random
# moment, or kin serve and a shim server at once mid-rollout; after each: convergence, nothing acknowledged lost, no pod IP
# twice, SQLite's integrity_check, no leaked kernel object or process.
# Prints one line per trial and the figures. (The e2e tier runs 4 trials.)
SOAK_TRIALS ?= 20
soak: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target kin e2e_soak_test
	cd $(BUILD) && KIN_SOAK_TRIALS=$(SOAK_TRIALS) ./e2e/e2e_soak_test \
	  --gtest_filter='SoakE2E.KillNine*' --gtest_brief=1

bench: build
	./scripts/bench $(BUILD)

demo: build
	./scripts/demo $(BUILD)

SOURCES = $(shell git ls-files '*.cc' '*.h')
format:
	clang-format -i $(SOURCES)
format-check:
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
