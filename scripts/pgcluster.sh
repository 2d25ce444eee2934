#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A throwaway PostgreSQL cluster for the tests: initdb into DIR (as the
# postgres user: initdb refuses root), listening only on a Unix socket in
# DIR on a random port, never the system cluster.
#   scripts/pgcluster.sh start DIR   prints the port on stdout
#   scripts/pgcluster.sh stop DIR
# Roles: postgres (superuser, trust) and app_pw (password 'p@ss w/rd%',
# scram-sha-256) for the password tests.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "pgcluster: no PostgreSQL server binaries in /usr/lib/postgresql" >&2; exit 1; }

case $cmd in
start)
  mkdir -p "$dir"
  chown postgres: "$dir"
  chmod 0755 "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
max_connections = 50
CONF
    cat >"$dir/data/pg_hba.conf" <<HBA
local all app_pw scram-sha-256
local all all trust
HBA
    if runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
      "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE app_pw LOGIN SUPERUSER PASSWORD 'p@ss w/rd%'" >/dev/null
      echo "$port"
      exit 0
    fi
  done
  cat "$dir/server.log" >&2
  exit 1
  ;;
stop)
  [ -d "$dir/data" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
esac
