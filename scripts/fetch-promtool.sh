#!/usr/bin/env bash
# Puts Debian's promtool (from the `prometheus` package's files) in a cache and prints its path,
# without installing the package: installing it would also enable and start a Prometheus
# server on :9090 on a machine with systemd, which `make test` has no business doing.
#
#   promtool=$(scripts/fetch-promtool.sh)   # ~/.cache/outboxd/prometheus/<version>/usr/bin/promtool
#
# The first run downloads the .deb through apt (no root needed for that) and unpacks it; later
# runs only print the path. OUTBOXD_PROMTOOL_CACHE moves the cache.
set -euo pipefail
cache_root="${OUTBOXD_PROMTOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/prometheus}"
version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
if [[ -z "$version" || "$version" == "(none)" ]]; then
  # An installed prometheus package serves as well.
  if command -v promtool >/dev/null; then command -v promtool; exit 0; fi
  echo "fetch-promtool: apt knows no 'prometheus' package; run apt-get update (or install prometheus)" >&2
  exit 1
fi
dir="$cache_root/$version"
if [[ ! -x "$dir/usr/bin/promtool" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-promtool: unpacking promtool of prometheus $version into $dir" >&2
  # As root apt warns that it cannot drop to its _apt user for the download: harmless here.
  (cd "$tmp" && apt-get download -qq "prometheus=$version" >/dev/null 2> >(grep -v "unsandboxed as root" >&2)) || {
    echo "fetch-promtool: apt-get download prometheus=$version failed (no network to Debian's mirror?)" >&2
    exit 1
  }
  mkdir -p "$cache_root"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  [[ -x "$tmp/root/usr/bin/promtool" ]] || { echo "fetch-promtool: no usr/bin/promtool in the package" >&2; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir/usr/bin"
  mv "$tmp/root/usr/bin/promtool" "$dir/usr/bin/promtool"
fi
echo "$dir/usr/bin/promtool"
