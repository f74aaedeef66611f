# outboxd: the two commands a newcomer runs are `make demo` and `make test`.
# Both install missing Debian packages first (quick when nothing is missing).

BUILD_DIR ?= build
# ccache sees paths relative to this checkout, so a fresh clone elsewhere (CI) reuses what an
# earlier build of the same sources compiled, wherever that checkout was.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1
JOBS ?= 2
# CI turns warnings into errors; locally they stay warnings.
WERROR := $(if $(CI),ON,OFF)
CMAKE_ARGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DOUTBOXD_WERROR=$(WERROR)

.PHONY: all deps build test pg17-root promtool unit-test integration-test kafka-test kafka-jars compat demo clean fuzz fuzz-build

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_ARGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Apache Kafka's jars for the real-broker tests (tests/kafka/pom.xml), Kafka Connect +
# Debezium's for the bench and tests/compat (bench/debezium/pom.xml) and the CloudEvents Java
# SDK's Kafka binding for tests/compat (tests/compat/cloudevents/pom.xml), resolved once into
# ~/.cache/outboxd/kafka-jars; offline and instant once there.
kafka-jars: deps
	@./scripts/fetch-kafka-jars.sh >/dev/null
	@./scripts/fetch-kafka-jars.sh bench/debezium/pom.xml >/dev/null
	@./scripts/fetch-kafka-jars.sh tests/compat/cloudevents/pom.xml >/dev/null

# promtool for the alerting-rule tests (ctest -L ops), unpacked from Debian's prometheus
# package into ~/.cache/outboxd/prometheus without installing (and starting) the server.
promtool: deps
	@./scripts/fetch-promtool.sh >/dev/null

# A Debian stable root filesystem with PostgreSQL 17 for ctest -L pg17 (this machine's Debian has
# only 15), built once into ${OUTBOXD_PG17_ROOT:-~/.cache/outboxd/pg17-root}; instant once there.
pg17-root: deps
	@./tests/pg17/prepare-rootfs.sh >/dev/null

# Every test: unit tests, integration tests (real PostgreSQL + kafka-mock), the same guarantees
# on real Apache Kafka (ctest label kafka) and on PostgreSQL 17 (label pg17).
test: build fuzz-build kafka-jars promtool pg17-root
	./scripts/check-compose.sh
	# Bench smoke run (~65 s: outboxd both modes, Debezium both configs, polling and the Kafka
	# floor for a few seconds each on real Kafka): keeps the harness from rotting; no targets.
	./scripts/bench.sh --quick --build-dir=$(BUILD_DIR)
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

unit-test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -LE "integration|kafka|compat"

integration-test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L integration

# The real-broker tests alone (tests/kafka/): clusters start and stop as ctest fixtures.
kafka-test: build kafka-jars
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L kafka

# Debezium (Kafka Connect + Outbox Event Router) and outboxd --format=debezium side by side on a
# real Kafka, then outboxd taking over Debezium's slot and publication (tests/compat/); `make test`
# runs it too.
compat: build kafka-jars
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L compat

demo: build
	./scripts/demo.sh $(BUILD_DIR)/bin

# Side-by-side bench on real Kafka (~20 min): outboxd, Debezium, polling, the Kafka floor and
# bench-repl-reader: bench/results/<date>-<host>.{md,tsv}, -latency.png, -wal.png.
# `make bench BENCH_ARGS=--quick` is the smoke run that `make test` also runs;
# `make bench BENCH_ARGS=--mock` the earlier outboxd-vs-polling suite on kafka-mock.
.PHONY: bench
bench: build
	./scripts/bench.sh --build-dir=$(BUILD_DIR) $(BENCH_ARGS)

# Debian package of the outboxd binary, its systemd unit and the README (CPack):
# $(BUILD_DIR)/outboxd_<version>_<arch>.deb
.PHONY: package
package: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS) --target outboxd
	cd $(BUILD_DIR) && cpack -G DEB

clean:
	rm -rf $(BUILD_DIR)

# libFuzzer targets for the pgoutput parser and the outbox mapping, and for
# the decoder's JSON (fuzz/), built with clang under AddressSanitizer +
# UndefinedBehaviorSanitizer in $(BUILD_DIR)/fuzz-clang. `make test` runs
# them for 30 s and 20 s (ctest label fuzz); `make fuzz` each for FUZZ_SECONDS.
FUZZ_BUILD_DIR := $(BUILD_DIR)/fuzz-clang
FUZZ_SECONDS ?= 600

fuzz-build: deps
	cmake -S . -B $(FUZZ_BUILD_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DOUTBOXD_FUZZ=ON $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD_DIR) -j$(JOBS) --target pgoutput_fuzz json_fuzz

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) pgoutput
	fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) json
