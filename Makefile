# SPDX-License-Identifier: MIT
# Thin front door over CMake. `make up` runs the shop, `make test` runs every test.
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
DATA ?= $(CURDIR)/var

.PHONY: all bootstrap build build-asan up test test-unit chaos bench format check-style clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: bootstrap
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DAGORA_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

up: build
	@scripts/up $(BUILD) $(DATA)

# Every test: unit tests of the release build, then unit, component and
# end-to-end tests of the ASan + UBSan build.
test: build build-asan
	@cd $(BUILD) && ctest -L unit --output-on-failure -j$(JOBS)
	@cd $(BUILD_ASAN) && ctest --output-on-failure -j$(JOBS)

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
	rm -rf $(BUILD) $(BUILD_ASAN)
