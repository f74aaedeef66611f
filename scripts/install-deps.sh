#!/usr/bin/env bash
# Installs the Debian packages outboxd needs to build, test and run its demo.
# Idempotent and quick when everything is already there: apt is only touched
# for packages dpkg does not report as installed.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libpq-dev librdkafka-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libcpp-httplib-dev prometheus-cpp-dev  # /metrics, /healthz, /readyz
  openssl  # the admin TLS test makes a certificate
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsimdjson-dev  # the decoder's JSON: headers column, logical decoding message content
  clang libclang-rt-14-dev  # make fuzz (and its 30 s run in make test): libFuzzer, ASan, UBSan
  postgresql-15 postgresql-client-15
  debootstrap  # PostgreSQL 17 for ctest -L pg17 runs from a Debian stable root (tests/pg17/prepare-rootfs.sh)
  openjdk-17-jre-headless maven  # real Apache Kafka for the tests (tests/kafka/, scripts/fetch-kafka-jars.sh)
  openjdk-17-jdk-headless  # javac: tests/compat/cloudevents_sdk.sh compiles its CloudEvents SDK reader
  iptables  # the dead-path test black-holes PostgreSQL's port (in its own network namespace)
  docker-compose
  # ctest -L ops: the Kubernetes API's types check the manifests (tests/ops/check_kubernetes.py,
  # run by /usr/bin/python3). promtool, which checks the alerting rules, comes from the
  # prometheus package's files without installing it (scripts/fetch-promtool.sh): the package
  # would start a Prometheus server.
  python3-yaml python3-kubernetes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "outboxd: installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "outboxd: need root (or sudo) to install: ${missing[*]}" >&2
    echo "  run: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
