#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: installs what is missing, builds archfs, and mounts a backup
# archive (by default a generated sample in the application's format with a
# SQLite database).   usage: scripts/demo.sh [ARCHIVE.zip] [MOUNTPOINT]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh </dev/null
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

demo=/tmp/archfs-demo
archive=${1:-}
mnt=${2:-$demo/mnt}
if [ -z "$archive" ]; then
  mkdir -p "$demo"
  archive=$demo/timetracker_backup_$(date +%Y%m%d_%H%M%S).zip
  python3 tests/fixtures/mkarchive.py --variant app --db sqlite --uploads 200 "$archive"
  echo "made sample archive $archive"
fi
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
  fusermount3 -u "$mnt"
fi
build/archfs "$archive" "$mnt"
cat <<EOT
mounted $archive at $mnt (read-only)

look inside:
  ls -l $mnt
  cat $mnt/manifest.json
  sqlite3 $mnt/db.sqlite 'select count(*) from users'
  getfattr -d $mnt/db.sqlite
  cp -r $mnt/uploads/logos /tmp/restored-logos
unmount:
  fusermount3 -u $mnt
EOT
