#!/usr/bin/env bash
# Prepares, once, a Debian stable (trixie) root filesystem with PostgreSQL 17 for the tests that
# run on 17 (ctest label pg17; tests/support/pg_server.h, PgServerOptions::version): this
# machine's Debian ships only PostgreSQL 15. The root is built with `debootstrap
# --variant=minbase` from the Debian mirror this machine's apt already uses, postgresql-17 is
# installed in it with apt, and it is cached outside the build tree at
#   ${OUTBOXD_PG17_ROOT:-$HOME/.cache/outboxd/pg17-root}
# Prints that path on stdout (progress goes to stderr). Idempotent: a marker file is written last,
# so a root without it (an interrupted build) is removed and built again; with it, this returns at
# once. Concurrent callers wait on a lock and build it once. Needs root (debootstrap, chroot).
set -euo pipefail

suite=trixie
root="${OUTBOXD_PG17_ROOT:-$HOME/.cache/outboxd/pg17-root}"
marker="$root/.outboxd-pg17-ready"

if [ -f "$marker" ]; then
  echo "$root"
  exit 0
fi

log() { echo "prepare-rootfs: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "needs root (debootstrap and chroot); run as root or: sudo $0"
  exit 1
fi
for tool in debootstrap unshare flock; do
  if ! command -v "$tool" >/dev/null; then
    log "$tool is missing; run scripts/install-deps.sh"
    exit 1
  fi
done

# The mirror apt uses here: the URI of the "deb" source that carries this machine's own release
# (not -security/-updates), from deb822 .sources files or one-line sources.list files.
host_codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$host_codename" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; uris = ""; suites = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      tolower($1) == "types:"  { $1 = ""; types = $0 }
      tolower($1) == "uris:"   { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI suite components...
    sed -e 's/\[[^]]*\]//' "$f" | awk -v want="$host_codename" \
      '$1 == "deb" && $3 == want { print $2; exit }'
  done
}
mirror="$(find_mirror | head -n 1)"
if [ -z "$mirror" ]; then
  log "found no 'deb' source for '$host_codename' in /etc/apt/sources.list{,.d/*} to take the mirror from"
  exit 1
fi

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9
if [ -f "$marker" ]; then  # another caller built it while we waited
  echo "$root"
  exit 0
fi

# Removes a (half-built) tree, first unmounting anything a killed build left mounted in it.
remove_tree() {
  local dir="$1" m
  [ -e "$dir" ] || return 0
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$dir"
}

partial="$root.partial"
remove_tree "$root"
remove_tree "$partial"

start=$(date +%s)
log "building a Debian $suite root with postgresql-17 from $mirror in $root (once; about a minute)"
# Mounts made below live in a private mount namespace: they disappear with it, whatever happens.
unshare -m --propagation private bash -euo pipefail -c '
  partial="$1"; suite="$2"; mirror="$3"
  debootstrap --variant=minbase "$suite" "$partial" "$mirror" >&2
  # No services may start inside the root, and postgresql-common must not create a cluster:
  # the tests make their own with initdb.
  printf "#!/bin/sh\nexit 101\n" >"$partial/usr/sbin/policy-rc.d"
  chmod 755 "$partial/usr/sbin/policy-rc.d"
  mkdir -p "$partial/etc/postgresql-common"
  echo "create_main_cluster = false" >"$partial/etc/postgresql-common/createcluster.conf"
  mount -t proc proc "$partial/proc"
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
  chroot "$partial" apt-get update -qq >&2
  chroot "$partial" apt-get install -y -qq --no-install-recommends postgresql-17 >&2
  chroot "$partial" apt-get clean
  rm -rf "$partial"/var/lib/apt/lists/*
  umount "$partial/proc"
' prepare-rootfs "$partial" "$suite" "$mirror"

test -x "$partial/usr/lib/postgresql/17/bin/postgres"
mv "$partial" "$root"
touch "$marker"
log "done in $(($(date +%s) - start)) s; $(du -sh --one-file-system "$root" | cut -f1) in $root"
echo "$root"
