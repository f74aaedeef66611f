#!/usr/bin/env bash
# Validates the docker-compose files: no Docker engine runs here, but
# `docker-compose config` parses and checks them all the same.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in docker-compose.yml; do
  docker-compose -f "$f" config --quiet
  echo "compose: $f is valid"
done
