# Sourced by scripts that need a throwaway PostgreSQL (demo, fixture capture, bench).
#
#   source scripts/lib/throwaway-pg.sh
#   pg_start "$tmpdir" [extra postgres -c settings...]   # sets PG_PORT, PG_HOST, PG_CONNINFO
#   pg_psql -c 'SELECT 1'
#   pg_stop                                              # also safe in an EXIT trap
#
# initdb into "$tmpdir/data" with wal_level=logical on 127.0.0.1 and a free
# port. PostgreSQL refuses to run as root, so as root it runs as the postgres
# user (the directory is handed to that user).
#
# PG_ROOT=<root filesystem> (tests/pg17/prepare-rootfs.sh prints it) with
# PG_BIN=/usr/lib/postgresql/17/bin runs every PostgreSQL program chrooted in
# that root as its postgres user, in a private mount namespace (unshare -m)
# that mounts the root's /proc and a tmpfs /dev/shm and binds the temp dir at
# the same path inside the root; the mounts go with the namespace. Needs root.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# pg_in_root PROGRAM ARGS...: PROGRAM chrooted in $PG_ROOT (see above).
pg_in_root() {
  local ids
  ids=$(awk -F: '$1 == "postgres" { print $3 ":" $4 }' "$PG_ROOT/etc/passwd")
  unshare -m --propagation private /bin/sh -c '
    set -eu
    root=$1 dir=$2 user=$3
    shift 3
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
    mount --bind "$dir" "$root$dir"
    exec chroot --userspec="$user" "$root" "$@"' sh "$PG_ROOT" "$PG_DIR" "$ids" "$@"
}

if [[ -n ${PG_ROOT:-} ]]; then
  PG_AS=(pg_in_root)
  PG_SUPERUSER=postgres
elif [[ $(id -u) -eq 0 ]]; then
  PG_AS=(runuser -u postgres --)
  PG_SUPERUSER=postgres
else
  PG_AS=()
  PG_SUPERUSER=$(id -un)
fi

# A port nothing listens on: connecting to it is refused.
pg_free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free TCP port found" >&2
  return 1
}

pg_start() {
  PG_DIR=$1
  shift
  PGDATA_DIR="$PG_DIR/data"
  if [[ -n ${PG_ROOT:-} ]]; then
    mkdir -p "$PG_ROOT$PG_DIR"  # the mount point of the bind mount
    chown "$(awk -F: '$1 == "postgres" { print $3 ":" $4 }' "$PG_ROOT/etc/passwd")" "$PG_DIR"
  elif [[ ${#PG_AS[@]} -gt 0 ]]; then
    chown "$PG_SUPERUSER" "$PG_DIR"
  fi
  PG_HOST=127.0.0.1
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$PG_SUPERUSER" --auth=trust \
    --encoding=UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  local settings=""
  for setting in "$@"; do settings+=" -c $setting"; done
  # The free port can be taken by another process (a test running beside this
  # one) before the server binds it: then try another.
  local attempt
  for attempt in 1 2 3 4 5; do
    PG_PORT=$(pg_free_port)
    local opts="-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
    opts+=" -c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR"
    opts+=" -c timezone=UTC$settings"
    if "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w -l "$PG_DIR/server.log" -o "$opts" \
      start >"$PG_DIR/pg_ctl.log" 2>&1; then
      PG_CONNINFO="host=$PG_HOST port=$PG_PORT user=$PG_SUPERUSER dbname=postgres"
      return 0
    fi
    grep -q "Address already in use" "$PG_DIR/server.log" || break
  done
  cat "$PG_DIR/pg_ctl.log" "$PG_DIR/server.log" >&2
  return 1
}

pg_psql() {
  "${PG_AS[@]}" "$PG_BIN/psql" -X -q -h "$PG_DIR" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres \
    -v ON_ERROR_STOP=1 "$@"
}

pg_stop() {
  if [[ -n "${PGDATA_DIR:-}" && -f "$PGDATA_DIR/postmaster.pid" ]]; then
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 ||
      "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n ${PG_ROOT:-} && -n ${PG_DIR:-} ]]; then rmdir "$PG_ROOT$PG_DIR" 2>/dev/null || true; fi
}
