# SPDX-License-Identifier: MIT
# Thin front door over CMake. `make up` runs the shop, `make test` runs every test.
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 300
DATA ?= $(CURDIR)/var

.PHONY: all bootstrap build build-asan build-fuzz up test test-unit chaos fuzz bench format check-style clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: bootstrap
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DAGORA_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

# The libFuzzer targets (fuzz/): clang, ASan + UBSan, the chassis only.
build-fuzz: bootstrap
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DAGORA_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j$(JOBS)

up: build
	@scripts/up $(BUILD) $(DATA)

# Every test: unit tests of the release build, its whole-system suites on
# PostgreSQL + RabbitMQ with several instances (label engines, one at a
# time: each runs a shop, a PostgreSQL cluster and a RabbitMQ node), then
# unit, component and end-to-end tests of the ASan + UBSan build, then every
# fuzz target for a short bounded time (12 s each, two at a time).
test: build build-asan build-fuzz
	@cd $(BUILD) && ctest -L unit --output-on-failure -j$(JOBS)
	@cd $(BUILD) && ctest -L engines --output-on-failure -j1
	@cd $(BUILD_ASAN) && ctest -LE engines --output-on-failure -j$(JOBS)
	@cd $(BUILD_FUZZ) && AGORA_FUZZ_SECONDS=$${AGORA_FUZZ_SECONDS:-12} ctest --output-on-failure

# Every fuzz target for FUZZ_SECONDS each (default 300).
fuzz: build-fuzz
	@scripts/fuzz $(BUILD_FUZZ) $(FUZZ_SECONDS)

# The chaos test at full size: 300 checkouts under SIGKILLs (tests/chaos/).
chaos: build
	@cd $(BUILD) && AGORA_CHAOS_ORDERS=$${AGORA_CHAOS_ORDERS:-300} ctest -L chaos --output-on-failure

test-unit: build-asan
	@cd $(BUILD_ASAN) && ctest -L unit --output-on-failure -j$(JOBS)

bench: build
	@scripts/bootstrap --bench
	@bench/run-all $(BUILD)

format:
	@scripts/check-style --fix

check-style:
	@scripts/check-style

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
