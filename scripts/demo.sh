#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: installs what is missing, builds archfs, and mounts a backup
# archive (by default a generated sample in the application's format with a
# SQLite database, and a live SQLite target to restore it into).
# usage: scripts/demo.sh [ARCHIVE.zip [MOUNTPOINT [archfs target options...]]]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh </dev/null
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

demo=/tmp/archfs-demo
archive=${1:-}
mnt=${2:-$demo/mnt}
shift $(($# > 2 ? 2 : $#))
target=("$@")
if [ -z "$archive" ]; then
  mkdir -p "$demo"
  archive=$demo/timetracker_backup_$(date +%Y%m%d_%H%M%S).zip
  python3 tests/fixtures/mkarchive.py --variant app --db sqlite --uploads 200 "$archive"
  echo "made sample archive $archive"
  # A live target for the restore: the application's database and uploads
  # as they are now, with other rows than the backup's.
  live=$demo/live
  rm -rf "$live"
  mkdir -p "$live/uploads/logos"
  python3 - "$live/app.db" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode=WAL")
con.executescript("""
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0000live');
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
INSERT INTO users (username, role) VALUES ('live-admin', 'admin');
""")
con.commit()
PY
  echo "a logo uploaded after the backup" > "$live/uploads/logos/new-logo.txt"
  target=(--database "sqlite:///$live/app.db" --uploads "$live/uploads" --flag-file "$live/restore.flag")
fi
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
  fusermount3 -u "$mnt"
fi
build/archfs "${target[@]}" "$archive" "$mnt"
cat <<EOT
mounted $archive at $mnt (read-only)

look inside:
  ls -l $mnt
  cat $mnt/manifest.json
  sqlite3 $mnt/db.sqlite 'select count(*) from users'
  getfattr -d $mnt/db.sqlite
  cp -r $mnt/uploads/logos /tmp/restored-logos
EOT
if [ ${#target[@]} -gt 0 ]; then
  cat <<EOT
restore it into the target (${target[*]}):
  echo restore > $mnt/.control
  cat $mnt/.progress $mnt/.restore_in_progress
  cat $mnt/.status $mnt/.log
EOT
fi
cat <<EOT
unmount:
  fusermount3 -u $mnt
EOT
