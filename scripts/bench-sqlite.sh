#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The SQLite restore against its references, in one run: an archive whose
# db.sqlite is SIZE_MB, restored into a small live database
#   - by archfs restore (verified first, copied with the online backup API),
#   - by cp of an already extracted db.sqlite over the live file,
#   - the application's way: extract the archive, then copy the file over.
# Each run starts from the same small live database.  Writes the table into
# docs/restore.md.   usage: scripts/bench.sh sqlite [SIZE_MB]  (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
scripts/setup.sh </dev/null
[ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal >/dev/null
ninja -C build-bench-isal >/dev/null
work=$(mktemp -d /tmp/archfs-benchsqlite.XXXXXX)
trap 'rm -rf "$work"' EXIT
schema='CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
CREATE TABLE time_entries (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
  start TEXT, "end" TEXT, notes TEXT);
CREATE INDEX time_entries_user ON time_entries (user_id);'

echo "making the source database (${size_mb} MB) ..."
rows=$(( size_mb * 1000000 / 186 ))  # about 186 bytes a row, index included
sqlite3 "$work/db.sqlite" "$schema
INSERT INTO alembic_version VALUES ('new');
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 200)
  INSERT INTO users (username, role) SELECT 'user' || i, 'user' FROM g;
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $rows)
  INSERT INTO time_entries (user_id, start, \"end\", notes)
  SELECT 1 + i % 200, datetime(1700000000 + i * 60, 'unixepoch'), datetime(1700003600 + i * 60, 'unixepoch'),
         'entry ' || i || ' ' || hex(randomblob(40)) || ' ' || substr('meeting review planning support', 1 + i % 20, 30)
  FROM g;"
db_mb=$(( $(stat -c %s "$work/db.sqlite") / 1000000 ))
/usr/bin/python3 - "$work/backup.zip" "$work/db.sqlite" <<'PY'
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", json.dumps({"alembic_revision": "new", "app_version": None,
               "created_at": "2026-11-20T10:15:02", "db_type": "sqlite"}, indent=2, sort_keys=True))
    z.write(sys.argv[2], "db.sqlite")
PY
zip_mb=$(( $(stat -c %s "$work/backup.zip") / 1000000 ))
mkdir "$work/extracted" && unzip -q "$work/backup.zip" db.sqlite -d "$work/extracted"
fresh() { rm -f "$work/$1".db*; sqlite3 "$work/$1.db" "PRAGMA journal_mode=WAL; $schema
  INSERT INTO alembic_version VALUES ('old'); INSERT INTO users (username) VALUES ('old');" >/dev/null; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l | xargs printf '%.1f'; }

fresh live0
echo "archfs verify alone ..."
t_verify=$(secs build-bench-isal/archfs verify "$work/backup.zip" --database "sqlite:///$work/live0.db")
fresh live1
echo "archfs restore ..."
t_archfs=$(secs build-bench-isal/archfs restore "$work/backup.zip" --no-snapshot --database "sqlite:///$work/live1.db")
[ "$(sqlite3 "$work/live1.db" 'SELECT count(*) FROM time_entries')" = "$rows" ] || { echo "archfs restore: wrong row count" >&2; exit 1; }
fresh live2
echo "cp of an extracted db.sqlite ..."
t_cp=$(secs cp "$work/extracted/db.sqlite" "$work/live2.db")
fresh live3
echo "the application's way: unzip, then copy the file over ..."
app_way() { rm -rf "$work/x" && mkdir "$work/x" && unzip -q "$work/backup.zip" -d "$work/x" && cp "$work/x/db.sqlite" "$1"; }
t_app=$(secs app_way "$work/live3.db")
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
table=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh sqlite $size_mb\`. Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), SQLite $(sqlite3 --version | awk '{print $1}'). One run each, into a live database in WAL mode.
db.sqlite: $db_mb MB ($rows time entries with an index), $zip_mb MB deflated in the archive.

| restore | seconds | archfs time / this time |
|---|---|---|
| archfs restore (verify stages db.sqlite beside the target and runs integrity_check; the backup API copies it in; its page count checked after) | $t_archfs | 1.00 |
| of which: archfs verify alone | $t_verify | $(ratio "$t_archfs" "$t_verify") |
| cp of an already extracted db.sqlite over the live file | $t_cp | $(ratio "$t_archfs" "$t_cp") |
| application's way: unzip, then copy the file over the live one | $t_app | $(ratio "$t_archfs" "$t_app") |
EOT
)
echo
echo "$table"
printf '%s\n' "$table" | scripts/doc-table.py docs/restore.md sqlite-bench
