#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The PostgreSQL restore against its references, in one run on a throwaway
# cluster: a dump of at least 1 GB of table data restored
#   - by archfs restore (streamed from the archive, verified first, one transaction),
#   - by archfs restore --migrate (the staging path: restore into staging, migrate, swap),
#   - by plain pg_restore of an already extracted db.dump,
#   - the application's way: extract the archive, then pg_restore --clean.
# Each run starts from the same small live database.  Writes the table into
# docs/postgresql.md.   usage: scripts/bench.sh pg [ROWS]  (default 4500000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-4500000}
scripts/setup.sh </dev/null
[ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal >/dev/null
ninja -C build-bench-isal >/dev/null
work=$(mktemp -d /tmp/archfs-benchpg.XXXXXX)
chmod 755 "$work"
pg=$work/pg
trap 'scripts/pgcluster.sh stop "$pg"; rm -rf "$work"' EXIT
port=$(scripts/pgcluster.sh start "$pg")
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql() { "$bin/psql" -X -q -h "$pg" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
schema="CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
CREATE TABLE users (id SERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
CREATE TABLE time_entries (id SERIAL PRIMARY KEY, user_id INTEGER REFERENCES users(id),
  start TIMESTAMP, stop TIMESTAMP, notes TEXT);
CREATE INDEX ON time_entries (user_id);"

echo "making the source database ($rows time entries) ..."
psql -d postgres -c "CREATE DATABASE src" -c "CREATE DATABASE old"
psql -d src -c "$schema" -c "INSERT INTO alembic_version VALUES ('new');
  INSERT INTO users (username, role) SELECT 'user' || g, 'user' FROM generate_series(1, 200) g;
  INSERT INTO time_entries (user_id, start, stop, notes)
    SELECT 1 + g % 200, now() - g * interval '1 minute', now(), repeat(md5(g::text), 5)
    FROM generate_series(1, $rows) g;"
psql -d old -c "$schema" -c "INSERT INTO alembic_version VALUES ('old');
  INSERT INTO users (username) VALUES ('old');"
table_mb=$(psql -d src -At -c "SELECT pg_total_relation_size('time_entries') / 1000000")
echo "dumping ($table_mb MB of table data) ..."
"$bin/pg_dump" -Fc -h "$pg" -p "$port" -U postgres -f "$work/db.dump" src
/usr/bin/python3 - "$work/backup.zip" "$work/db.dump" <<'PY'
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", json.dumps({"alembic_revision": "new", "app_version": None,
               "created_at": "2026-11-20T10:15:02", "db_type": "postgresql"}, indent=2, sort_keys=True))
    z.write(sys.argv[2], "db.dump")
PY
dump_mb=$(( $(stat -c %s "$work/db.dump") / 1000000 ))
fresh() { psql -d postgres -c "CREATE DATABASE $1 TEMPLATE old"; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l | xargs printf '%.1f'; }

db=live0; fresh $db
echo "archfs verify alone ..."
t_verify=$(secs build-bench-isal/archfs verify "$work/backup.zip" \
  --database "postgresql://postgres@/$db?host=$pg&port=$port")
db=live1; fresh $db
echo "archfs restore ..."
t_archfs=$(secs build-bench-isal/archfs restore "$work/backup.zip" --no-snapshot \
  --database "postgresql://postgres@/$db?host=$pg&port=$port")
db=live4; fresh $db
echo "archfs restore --migrate (staging database, migrate, swap) ..."
t_staging=$(secs build-bench-isal/archfs restore "$work/backup.zip" --no-snapshot --migrate true \
  --database "postgresql://postgres@/$db?host=$pg&port=$port")
db=live2; fresh $db
echo "plain pg_restore of an extracted db.dump ..."
t_plain=$(secs "$bin/pg_restore" --clean --if-exists --no-owner -h "$pg" -p "$port" -U postgres -d "$db" "$work/db.dump")
db=live3; fresh $db
echo "the application's way: unzip, then pg_restore --clean ..."
app_way() {
  rm -rf "$work/x" && mkdir "$work/x" && unzip -q "$work/backup.zip" -d "$work/x" &&
    "$bin/pg_restore" --clean --if-exists --no-owner -h "$pg" -p "$port" -U postgres -d "$1" "$work/x/db.dump"
}
t_app=$(secs app_way "$db")
ratio() { echo "scale=2; $1 / $2" | bc -l; }
table=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh pg $rows\`. Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on a Unix socket, fsync off. One run each.
Table data: $table_mb MB (time_entries with an index); db.dump: $dump_mb MB.

| restore | seconds | archfs time / this time |
|---|---|---|
| archfs restore (verify reads the dump twice, then one streamed transaction) | $t_archfs | 1.00 |
| archfs restore --migrate true: the dump restored into a staging database, the (empty) migration there, then pg_dump of staging streamed into the one transaction | $t_staging | $(ratio "$t_archfs" "$t_staging") |
| of which: archfs verify alone (header, pg_restore --list, pg_restore --file=/dev/null) | $t_verify | $(ratio "$t_archfs" "$t_verify") |
| plain pg_restore --clean of an extracted db.dump | $t_plain | $(ratio "$t_archfs" "$t_plain") |
| application's way: unzip, then pg_restore --clean | $t_app | $(ratio "$t_archfs" "$t_app") |
EOT
)
echo
echo "$table"
printf '%s\n' "$table" | scripts/doc-table.py docs/postgresql.md pg-bench
