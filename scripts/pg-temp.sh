#!/usr/bin/env bash
# A throwaway PostgreSQL (Debian's postgresql-15) for the browser test of several servers
# (frontend/e2e/cluster.test.mjs) and scripts/bench-cluster.sh:
#   pg-temp.sh start DIR PORT [durable]  initdb into DIR (new), start on 127.0.0.1:PORT,
#                                        print the URL
#   pg-temp.sh stop DIR                  stop it at once and remove DIR
# Trust auth on loopback and a socket in DIR only. fsync is off (a test's data, not a
# deployment's) unless `durable` is given, as the benchmark does so that its commits cost
# what a deployment's do. As root it runs as the postgres user: PostgreSQL refuses root.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    dir="$2" port="$3" fsync=off
    [ "${4:-}" != durable ] || fsync=on
    mkdir "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
    as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale -N >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=$fsync -c max_connections=300" start >/dev/null \
      || { cat "$dir/log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    dir="$2"
    if [ -d "$dir/data" ]; then
      as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start DIR PORT [durable] | stop DIR" >&2
    exit 2
    ;;
esac
