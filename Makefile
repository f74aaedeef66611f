# outboxd: the two commands a newcomer runs are `make demo` and `make test`.
# Both install missing Debian packages first (quick when nothing is missing).

BUILD_DIR ?= build
JOBS ?= 2
# CI turns warnings into errors; locally they stay warnings.
WERROR := $(if $(CI),ON,OFF)
CMAKE_ARGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DOUTBOXD_WERROR=$(WERROR)

.PHONY: all deps build test unit-test integration-test demo clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_ARGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Every test: unit tests and integration tests (real PostgreSQL + kafka-mock).
test: build
	./scripts/check-compose.sh
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

unit-test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -LE integration

integration-test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L integration

demo: build
	./scripts/demo.sh $(BUILD_DIR)/bin

clean:
	rm -rf $(BUILD_DIR)
