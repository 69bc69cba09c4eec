#!/bin/sh
# A throwaway PostgreSQL cluster for the tests: `pg_cluster.sh start DIR` creates a cluster in
# DIR (fsync off, no TCP, a Unix socket in DIR, user `esctl`, trust authentication) and starts
# it (`start DIR --durable`: with the server's default durability, fsync on, for benchmarks); `pg_cluster.sh restart DIR` restarts it (`pg_ctl restart`, fast mode: every session is
# disconnected; returns once it accepts connections again); `pg_cluster.sh stop DIR` stops it and
# removes DIR. `pg_cluster.sh uri DIR` prints the
# connection URI of its `postgres` database. initdb and postgres refuse to run as root, so as
# root both run as `nobody`, which is given DIR first. Exit 77 when no PostgreSQL server
# binaries are installed (CTest reports the tests that need the cluster as skipped).
set -eu

usage() { echo "usage: pg_cluster.sh start|restart|stop|uri DIR (start DIR --durable: fsync on)" >&2; exit 2; }
fsync=off
if [ $# -eq 3 ] && [ "$1" = start ] && [ "$3" = --durable ]; then
  fsync=on
elif [ $# -ne 2 ]; then
  usage
fi
cmd=$1
dir=$2

bindir() {
  for d in "${ESCTL_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# Runs a command as the cluster's owner: `nobody` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case $cmd in
  start)
    bin=$(bindir) || { echo "pg_cluster.sh: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; install postgresql" >&2; exit 77; }
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 700 "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown nobody "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U esctl -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -c listen_addresses='' -c fsync=$fsync -c max_connections=200" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "pg_cluster.sh: PostgreSQL running in $dir ($("$bin/postgres" --version))"
    ;;
  restart)
    bin=$(bindir) || { echo "pg_cluster.sh: no PostgreSQL server binaries found" >&2; exit 77; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null ||
      { tail -n 20 "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      bin=$(bindir) || exit 0
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  uri)
    echo "postgresql://esctl@/postgres?host=$dir"
    ;;
  *) usage ;;
esac
