#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmarks, as ratios against references measured in the same run on the
# same machine: archfs (ISA-L build; the zlib build for the sequential read
# too) against fuse-zip and archivemount (Debian packages, installed here)
# and against unzip / zipinfo, on archives in the application's format:
#   - mount + first ls of a 200,000-entry archive, and find | wc -l on it;
#   - sequential read of a deflated db.dump;
#   - random 4 KiB reads across a deflated db.sqlite, the first byte after
#     open, and a real sqlite3 query on it;
#   - cp -r of 20,000 small uploads;
#   - peak memory (VmHWM) of each filesystem process;
#   - random access with seek points: a fresh mount, the same mount, a
#     remount with the points kept on disk, against one sequential pass;
#   - directory mode: a walk of */manifest.json over 2,000 daily archives,
#     the LRU of open archives at its default against every archive open.
# Prints the tables and writes them into docs/performance.md.
#   usage: scripts/bench.sh [SIZE_MB]   (default 1024: the size of db.dump and db.sqlite)
#          scripts/bench.sh pg [ROWS]   the PostgreSQL restore (scripts/bench-pg.sh)
#          scripts/bench.sh sqlite [SIZE_MB]   the SQLite restore (scripts/bench-sqlite.sh)
#          scripts/bench.sh dirmode [ARCHIVES]   the directory-mode walk alone (default 2000)
#          scripts/bench.sh small   small files and tree walks into tmpfs (scripts/bench-small.sh)
#          scripts/bench.sh random [SIZE_MB]   random access with seek points alone (also part of a full run)
#          scripts/bench.sh remote [SIZE_MB]   remote archives over loopback HTTPS (scripts/bench-remote.sh; also part of a full run)
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- directory mode: find over N daily archives with the LRU at its default,
# against every archive open (--max-open-archives N); a fresh mount per run
# and two walks on it (the second reopens what the LRU closed).  A subshell:
# its own scratch directory and cleanup.
bench_dirmode() (
  n=${1:-2000}
  scripts/setup.sh </dev/null
  [ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal -Dtests=true >/dev/null
  ninja -C build-bench-isal archfs tests/mountcost >/dev/null  # what this part runs
  work=$(mktemp -d /tmp/archfs-bench-dir.XXXXXX)
  mnt=$work/mnt
  pid=
  mkdir -p "$mnt" "$work/backups"
  trap 'mountpoint -q "$mnt" && fusermount3 -u "$mnt"; [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
  echo "making $n daily archives (the application's layout: manifest, settings, db.sqlite, 50 uploads) ..."
  /usr/bin/python3 - "$work" "$n" <<'PY'
import os, shutil, sys, time
sys.path.insert(0, "tests/fixtures")
import mkarchive
work, n = sys.argv[1], int(sys.argv[2])
one = os.path.join(work, "one.zip")
mkarchive.make_archive(one, os.path.join(work, "src"), "app", uploads=50)
for i in range(n):  # one a day, named as the application names them
    name = time.strftime("timetracker_backup_%Y%m%d_%H%M%S", time.gmtime(1609470000 + i * 86400))
    shutil.copy(one, os.path.join(work, "backups", name + ".zip"))
mkarchive.make_archive(os.path.join(work, "big.zip"), os.path.join(work, "bigsrc"), "app", uploads=20000)
PY
  . scripts/bench-lib.sh
  d_fmt() { printf '%.2f' "$1"; }
  walk() { find "$mnt" -path "$mnt/*/manifest.json" -exec cat {} + >/dev/null; }
  declare -A W1 W2 HWM ZIPS
  for cfg in lru all; do
    opts=()
    [ $cfg = all ] && opts=(--max-open-archives "$n")
    r1=() r2=() h=()
    for _ in 1 2 3; do
      build-bench-isal/archfs -f --index-dir none "${opts[@]}" "$work/backups" "$mnt" &
      pid=$!
      for _ in $(seq 1 2000); do mountpoint -q "$mnt" && break; sleep 0.01; done
      s=$(now); walk; r1+=("$(since "$s")")
      s=$(now); walk; r2+=("$(since "$s")")
      h+=("$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")")
      ZIPS[$cfg]=$(find "/proc/$pid/fd" -lname '*.zip' | wc -l)
      fusermount3 -u "$mnt"
      wait "$pid" || true
      pid=
    done
    W1[$cfg]=$(printf '%s\n' "${r1[@]}" | med)
    W2[$cfg]=$(printf '%s\n' "${r2[@]}" | med)
    HWM[$cfg]=$(printf '%s\n' "${h[@]}" | med)
  done
  lru_default=$(build-bench-isal/archfs --help | sed -n 's/.*(default \([0-9]*\), and never.*/\1/p')
  small=$(build-bench-isal/tests/mountcost "$work/one.zip")
  big=$(build-bench-isal/tests/mountcost "$work/big.zip")
  report=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh dirmode $n\`. Machine: $(nproc) cores, Linux $(uname -r). $n archives of $(( $(stat -c %s "$work/one.zip") / 1024 )) KiB each (the application's layout, 50 uploads); \`find MNT -path 'MNT/*/manifest.json' -exec cat {} +\` twice on a fresh mount; medians of 3 mounts.

| open archives | first walk, s | second walk, s | peak memory (VmHWM), MB | archives open after the walks |
|---|---|---|---|---|
| LRU at its default ($lru_default) | $(d_fmt ${W1[lru]}) | $(d_fmt ${W2[lru]}) | $(mb ${HWM[lru]}) | ${ZIPS[lru]} |
| all open (--max-open-archives $n) | $(d_fmt ${W1[all]}) | $(d_fmt ${W2[all]}) | $(mb ${HWM[all]}) | ${ZIPS[all]} |
| LRU / all open | $(ratio ${W1[lru]} ${W1[all]}) | $(ratio ${W2[lru]} ${W2[all]}) | $(ratio ${HWM[lru]} ${HWM[all]}) | |

Reopening an archive the LRU closed, split in-process (\`tests/bench/mountcost\`): one of these archives: $small; one with 20,000 uploads: $big
EOT
)
  echo
  echo "$report"
  printf '%s\n' "$report" | scripts/doc-table.py docs/performance.md bench-dirmode
)

# ---- random access with seek points: one sequential pass over db.sqlite
# (the reference), 300 random 4 KiB reads on a fresh mount (their total
# against the pass), 300 more on the same mount (the points in place; other
# offsets, the first ones sit in the page cache), a remount and the first
# 300 reads again (the points kept on disk), the sqlite3 query, and peak
# memory.  BENCH_RANDOM_ZIP=FILE reuses an archive holding db.sqlite.
bench_random() (
  size_mb=${1:-1024}
  reads=300
  [ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal -Dtests=true >/dev/null
  ninja -C build-bench-isal archfs >/dev/null
  work=$(mktemp -d /tmp/archfs-bench-rand.XXXXXX)
  mnt=$work/mnt
  pid=
  mkdir -p "$mnt" "$work/cache"
  trap 'mountpoint -q "$mnt" && fusermount3 -u "$mnt"; [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
  zip=${BENCH_RANDOM_ZIP:-$work/sqlite.zip}
  if [ ! -f "$zip" ]; then
    echo "making db.sqlite of $size_mb MB ..."
    /usr/bin/python3 - "$work" "$size_mb" <<'PY'
import os, sqlite3, sys, zipfile
work, size = sys.argv[1], int(sys.argv[2]) << 20
db = os.path.join(work, "db.sqlite")
con = sqlite3.connect(db)
con.executescript("""
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
CREATE TABLE time_entries (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                           start TEXT, "end" TEXT, notes TEXT);
CREATE INDEX time_entries_user ON time_entries (user_id);
""")
con.executemany("INSERT INTO users (username, role) VALUES (?, 'user')", [("user%03d" % i,) for i in range(25)])
while os.path.getsize(db) < size:
    con.execute("""INSERT INTO time_entries (user_id, start, "end", notes)
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
        SELECT 1 + abs(random()) % 25, '2026-11-20 09:00', '2026-11-20 17:00',
               'worked on ' || hex(randomblob(24)) || ' with the team' FROM c""")
    con.commit()
con.close()
with zipfile.ZipFile(os.path.join(work, "sqlite.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.write(db, "db.sqlite")
os.remove(db)
PY
  fi
  /usr/bin/python3 - "$work/queries.sql" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "w") as f:
    for _ in range(200):
        f.write("SELECT id, user_id, length(notes) FROM time_entries WHERE id = %d;\n" % rng.randint(1, 4000000))
    f.write("SELECT count(*) FROM time_entries WHERE user_id = 7 AND id < 100000;\n")
PY
  . scripts/bench-lib.sh
  r_ms() { printf '%.2f' "$(echo "$1 * 1000" | bc -l)"; }
  r_mount() {  # OPTIONS...: a fresh archfs mount of $zip
    build-bench-isal/archfs -f "$@" "$zip" "$mnt" &
    pid=$!
    for _ in $(seq 1 2000); do mountpoint -q "$mnt" && return 0; sleep 0.01; done
    return 1
  }
  r_umount() { fusermount3 -u "$mnt"; wait "$pid" || true; pid=; }
  r_peak() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status"; }
  r_cpu() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$pid/stat"; }  # the daemon's CPU seconds
  mb=$(/usr/bin/python3 -c "import zipfile,sys; print(round(zipfile.ZipFile(sys.argv[1]).getinfo('db.sqlite').file_size / 1e6))" "$zip")
  none=(--index-dir none)
  pass=() fresh=() again=() peak=() cpass=() cfresh=() cagain=()
  for _ in 1 2 3; do
    r_mount "${none[@]}"; c=$(r_cpu); s=$(now); cat "$mnt/db.sqlite" >/dev/null; pass+=("$(since "$s")")
    cpass+=("$(printf '%.2f' "$(echo "$(r_cpu) - $c" | bc -l)")"); r_umount
    r_mount "${none[@]}"
    c=$(r_cpu); fresh+=("$(/usr/bin/python3 scripts/randread.py "$mnt/db.sqlite" $reads 2026)")
    cfresh+=("$(printf '%.2f' "$(echo "$(r_cpu) - $c" | bc -l)")")
    c=$(r_cpu); again+=("$(/usr/bin/python3 scripts/randread.py "$mnt/db.sqlite" $reads 2027)")
    cagain+=("$(printf '%.2f' "$(echo "$(r_cpu) - $c" | bc -l)")")
    peak+=("$(r_peak)")
    r_umount
  done
  t_pass=$(printf '%s\n' "${pass[@]}" | med)
  t_fresh=$(printf '%s\n' "${fresh[@]}" | med)
  t_again=$(printf '%s\n' "${again[@]}" | med)
  c_pass=$(printf '%s\n' "${cpass[@]}" | med)
  c_fresh=$(printf '%s\n' "${cfresh[@]}" | med)
  c_again=$(printf '%s\n' "${cagain[@]}" | med)
  h=$(printf '%s\n' "${peak[@]}" | med)
  # the points kept on disk: one mount makes them, the next ones read them
  r_mount --index-dir "$work/cache"
  /usr/bin/python3 scripts/randread.py "$mnt/db.sqlite" $reads 2026 >/dev/null
  r_umount
  kept=() sql=() sqlk=()
  for _ in 1 2 3; do
    r_mount --index-dir "$work/cache"
    kept+=("$(/usr/bin/python3 scripts/randread.py "$mnt/db.sqlite" $reads 2028)")
    r_umount
    r_mount "${none[@]}"
    s=$(now); sqlite3 "file:$mnt/db.sqlite?immutable=1" <"$work/queries.sql" >/dev/null; sql+=("$(since "$s")")
    r_umount
  done
  t_kept=$(printf '%s\n' "${kept[@]}" | med)
  t_sql=$(printf '%s\n' "${sql[@]}" | med)
  total=$(echo "$t_fresh * $reads" | bc -l)
  report=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh random $size_mb\`. Machine: $(nproc) cores, Linux $(uname -r). db.sqlite of $mb MB, deflated; $reads random 4 KiB reads at page-aligned offsets over the whole entry; medians of 3 mounts.

| what | s | ms per read | against the pass | daemon CPU, s | CPU against the pass's |
|---|---|---|---|---|---|
| one sequential pass, \`cat\` on a fresh mount (reference) | $(printf '%.3f' $t_pass) | | 1.00 | $c_pass | 1.00 |
| $reads random reads on a fresh mount (no points on disk) | $(printf '%.3f' $total) | $(r_ms $t_fresh) | $(ratio $total $t_pass) | $c_fresh | $(ratio $c_fresh $c_pass) |
| $reads more on the same mount (the points in place) | $(printf '%.3f' "$(echo "$t_again * $reads" | bc -l)") | $(r_ms $t_again) | | $c_again | |
| remount, first $reads reads (the points kept on disk) | $(printf '%.3f' "$(echo "$t_kept * $reads" | bc -l)") | $(r_ms $t_kept) | | | |
| sqlite3 query on a fresh mount (200 rowid lookups, a range count) | $(printf '%.3f' $t_sql) | | | | |

Peak memory (VmHWM) after the reads on a fresh mount: $h MB. Daemon CPU: user and system time of the archfs process (\`/proc/PID/stat\`), which other load on the machine disturbs less than wall time.
EOT
)
  echo
  echo "$report"
  [ -z "${BENCH_RANDOM_ZIP:-}" ] && printf '%s\n' "$report" | scripts/doc-table.py docs/performance.md bench-random
  true
)

case ${1:-} in
  pg) shift; exec scripts/bench-pg.sh "$@" ;;
  sqlite) shift; exec scripts/bench-sqlite.sh "$@" ;;
  dirmode) shift; bench_dirmode "$@"; exit 0 ;;
  small) shift; exec scripts/bench-small.sh "$@" ;;
  remote) shift; exec scripts/bench-remote.sh "$@" ;;
  random) shift; bench_random "$@"; exit 0 ;;
esac
size_mb=${1:-1024}
RANDOM_READS=2000
SLOW_READS=20          # archivemount re-inflates from the start on every backward seek
SLOW_LIMIT=240         # seconds any one archivemount step may take (it runs once)
scripts/setup.sh </dev/null
missing=()
for p in fuse-zip archivemount; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
for v in isal zlib; do
  [ -f build-bench-$v/build.ninja ] || meson setup build-bench-$v -Dbuildtype=release -Dinflate=$v -Dtests=true >/dev/null
  ninja -C build-bench-$v >/dev/null
done
work=$(mktemp -d /tmp/archfs-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
FS_PID=
cleanup() {
  mountpoint -q "$mnt" && fusermount3 -u "$mnt" || true
  [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "making the archives (db.dump and db.sqlite of ${size_mb} MB, 20,000 uploads, 200,000 entries) ..."
/usr/bin/python3 - "$work" "$size_mb" <<'PY'
import json, os, random, sqlite3, sys, zipfile
work, size = sys.argv[1], int(sys.argv[2]) << 20
manifest = lambda t: json.dumps({"alembic_revision": "a1b2c3d4e5f6", "app_version": "4.2.0",
                                 "created_at": "2026-11-20T10:15:02", "db_type": t}, indent=2, sort_keys=True)
# db.dump: pg_dump's custom format compresses its data blocks itself, so
# half of it barely deflates; the other half is COPY-like text.
rng = random.Random(1)
with open(os.path.join(work, "db.dump"), "wb") as f:
    f.write(b"PGDMP\x01\x0e\x00\x04\x08\x01")
    n = 0
    while n < size:
        if (n >> 20) % 2:
            block = rng.randbytes(1 << 20)
        else:
            block = "".join("%d\t%d\t2026-11-%02d 09:00:00\tnote %x\n" % (n + i, i % 25, i % 28 + 1, rng.getrandbits(64))
                            for i in range(22000)).encode()[: 1 << 20]
        f.write(block)
        n += len(block)
with zipfile.ZipFile(os.path.join(work, "pg.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", manifest("postgresql"))
    z.write(os.path.join(work, "db.dump"), "db.dump")
# db.sqlite: the application's tables, rows written by SQLite itself
db = os.path.join(work, "db.sqlite")
con = sqlite3.connect(db)
con.executescript("""
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
CREATE TABLE time_entries (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                           start TEXT, "end" TEXT, notes TEXT);
CREATE INDEX time_entries_user ON time_entries (user_id);
""")
con.executemany("INSERT INTO users (username, role) VALUES (?, 'user')", [("user%03d" % i,) for i in range(25)])
while os.path.getsize(db) < size:
    con.execute("""INSERT INTO time_entries (user_id, start, "end", notes)
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
        SELECT 1 + abs(random()) % 25, '2026-11-20 09:00', '2026-11-20 17:00',
               'worked on ' || hex(randomblob(24)) || ' with the team' FROM c""")
    con.commit()
con.close()
with zipfile.ZipFile(os.path.join(work, "sqlite.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", manifest("sqlite"))
    z.write(db, "db.sqlite")
# 20,000 small uploads, added from disk as the application does
up = os.path.join(work, "src", "uploads")
for i in range(20000):
    d = os.path.join(up, "attachments", "%02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file%05d.txt" % i), "wb") as f:
        f.write(("attachment %d\n" % i).encode() * rng.randint(1, 300))
with zipfile.ZipFile(os.path.join(work, "uploads.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", manifest("sqlite"))
    for root, _, names in os.walk(up):
        for n in sorted(names):
            full = os.path.join(root, n)
            z.write(full, os.path.relpath(full, os.path.join(work, "src")))
# 200,000 entries; with a file type in their modes, as entries added from
# disk have (fuse-zip 0.5 answers EIO for writestr's bare 0600 entries)
with zipfile.ZipFile(os.path.join(work, "many.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(200000):
        zi = zipfile.ZipInfo("uploads/a%03d/b%02d/file%06d.txt" % (i % 500, i % 37, i), (2026, 11, 20, 10, 15, 2))
        zi.external_attr = 0o100644 << 16
        zi.create_system = 3
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, b"x%d" % i)
PY
rm -f "$work/db.dump" && rm -rf "$work/src"
dump_mb=$(/usr/bin/python3 -c "import zipfile,sys; print(round(zipfile.ZipFile(sys.argv[1]).getinfo('db.dump').file_size / 1e6))" "$work/pg.zip")
sqlite_mb=$(/usr/bin/python3 -c "import zipfile,sys; print(round(zipfile.ZipFile(sys.argv[1]).getinfo('db.sqlite').file_size / 1e6))" "$work/sqlite.zip")

. scripts/bench-lib.sh
declare -A PEAK

# ---- mount + first ls; find | wc -l
echo "mount time ..."
declare -A T_MOUNT T_FIND
for fs in archfs fuse-zip archivemount; do
  runs=()
  for _ in 1 2 3; do
    s=$(now); mount_fs $fs "$work/many.zip"; ls "$mnt" >/dev/null; runs+=("$(since "$s")")
    umount_fs
  done
  T_MOUNT[$fs]=$(printf '%s\n' "${runs[@]}" | med)
  mount_fs $fs "$work/many.zip"
  s=$(now); paths=$( (find "$mnt" 2>/dev/null || true) | wc -l); T_FIND[$fs]=$(since "$s")
  PEAK[$fs.many]=$(peak_kb)
  umount_fs
done
runs=()
for _ in 1 2 3; do s=$(now); zipinfo -1 "$work/many.zip" >/dev/null; runs+=("$(since "$s")"); done
t_zipinfo=$(printf '%s\n' "${runs[@]}" | med)
split=$(build-bench-isal/tests/mountcost "$work/many.zip")

# ---- sequential read of db.dump
echo "sequential read ..."
declare -A T_SEQ
for fs in archfs archfs-zlib fuse-zip archivemount; do
  runs=()
  for _ in 1 2 3; do
    mount_fs $fs "$work/pg.zip"
    s=$(now)
    if timeout $SLOW_LIMIT cat "$mnt/db.dump" >/dev/null; then runs+=("$(since "$s")"); else runs+=(nan); fi
    PEAK[$fs.seq]=$(peak_kb)
    umount_fs
    [ $fs = archivemount ] && runs+=("${runs[0]}" "${runs[0]}") && break
  done
  T_SEQ[$fs]=$(printf '%s\n' "${runs[@]}" | med)
done
runs=()
for _ in 1 2 3; do s=$(now); unzip -p "$work/pg.zip" db.dump >/dev/null; runs+=("$(since "$s")"); done
t_unzip=$(printf '%s\n' "${runs[@]}" | med)

# ---- random 4 KiB reads, first byte, sqlite3 query on db.sqlite
echo "random reads ..."
cat >"$work/firstbyte.py" <<'PY'
# FILE: seconds from open to the first byte
import os, sys, time
t = time.monotonic()
fd = os.open(sys.argv[1], os.O_RDONLY)
assert len(os.read(fd, 1)) == 1
print("%.9f" % (time.monotonic() - t))
PY
/usr/bin/python3 - "$work/queries.sql" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "w") as f:
    for _ in range(200):
        f.write("SELECT id, user_id, length(notes) FROM time_entries WHERE id = %d;\n" % rng.randint(1, 4000000))
    f.write("SELECT count(*) FROM time_entries WHERE user_id = 7 AND id < 100000;\n")
PY
declare -A T_RAND T_FIRST T_SQL N_RAND
for fs in archfs fuse-zip archivemount; do
  n=$RANDOM_READS
  [ $fs = archivemount ] && n=$SLOW_READS
  mount_fs $fs "$work/sqlite.zip"
  T_FIRST[$fs]=$(/usr/bin/python3 "$work/firstbyte.py" "$mnt/db.sqlite")
  umount_fs
  mount_fs $fs "$work/sqlite.zip"
  T_RAND[$fs]=$(timeout $SLOW_LIMIT /usr/bin/python3 scripts/randread.py "$mnt/db.sqlite" $n || echo nan)
  N_RAND[$fs]=$n
  PEAK[$fs.rand]=$(peak_kb)
  umount_fs
  mount_fs $fs "$work/sqlite.zip"
  s=$(now)
  if timeout $SLOW_LIMIT sqlite3 "file:$mnt/db.sqlite?immutable=1" <"$work/queries.sql" >/dev/null; then
    T_SQL[$fs]=$(since "$s")
  else
    T_SQL[$fs]=nan
  fi
  umount_fs
done

# ---- cp -r of 20,000 small uploads
echo "cp -r ..."
declare -A T_CP
for fs in archfs fuse-zip archivemount; do
  runs=()
  for _ in 1 2 3; do
    mount_fs $fs "$work/uploads.zip"
    rm -rf "$work/dest" && mkdir "$work/dest"
    s=$(now)
    if timeout $SLOW_LIMIT cp -r "$mnt/uploads" "$work/dest/"; then runs+=("$(since "$s")"); else runs+=(nan); fi
    PEAK[$fs.cp]=$(peak_kb)
    umount_fs
    [ $fs = archivemount ] && runs+=("${runs[0]}" "${runs[0]}") && break
  done
  T_CP[$fs]=$(printf '%s\n' "${runs[@]}" | med)
done
runs=()
for _ in 1 2 3; do
  rm -rf "$work/dest" && mkdir "$work/dest"
  s=$(now); unzip -q "$work/uploads.zip" 'uploads/*' -d "$work/dest"; runs+=("$(since "$s")")
done
t_unzip_cp=$(printf '%s\n' "${runs[@]}" | med)
files=$(find "$work/dest/uploads" -type f | wc -l)
mv "$work/dest" "$work/extracted"
sync
runs=()
for _ in 1 2 3; do  # cp -r itself, from the extracted copy on disk: what cp costs here
  rm -rf "$work/dest" && mkdir "$work/dest"
  s=$(now); cp -r "$work/extracted/uploads" "$work/dest/"; runs+=("$(since "$s")")
done
t_cp_disk=$(printf '%s\n' "${runs[@]}" | med)

slow() { [ "$1" = nan ] && echo "over $SLOW_LIMIT" || fmt "$1"; }
sratio() { [ "$1" = nan ] || [ "$2" = nan ] && echo "n/a" || ratio "$1" "$2"; }
ms() { [ "$1" = nan ] && echo "n/a" || printf '%.2f' "$(echo "$1 * 1000" | bc -l)"; }
mbps() { echo "scale=0; $dump_mb / $1" | bc -l; }
report=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh $size_mb\`. Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"). archfs $(build-bench-isal/archfs --version | awk '{print $2}'), fuse-zip $(dpkg-query -W -f='${Version}' fuse-zip), archivemount $(dpkg-query -W -f='${Version}' archivemount). Medians of 3 unless noted.

### Mount and list a 200,000-entry archive

| command | mount + first ls, s | archfs / this | find \| wc -l ($paths paths), s | peak memory after find, MB |
|---|---|---|---|---|
| zipinfo -1 (reference) | $(fmt $t_zipinfo) | $(ratio ${T_MOUNT[archfs]} $t_zipinfo) | | |
| archfs | $(fmt ${T_MOUNT[archfs]}) | 1.00 | $(fmt ${T_FIND[archfs]}) | $(mb ${PEAK[archfs.many]}) |
| fuse-zip | $(fmt ${T_MOUNT[fuse-zip]}) | $(ratio ${T_MOUNT[archfs]} ${T_MOUNT[fuse-zip]}) | $(fmt ${T_FIND[fuse-zip]}) | $(mb ${PEAK[fuse-zip.many]}) |
| archivemount | $(fmt ${T_MOUNT[archivemount]}) | $(ratio ${T_MOUNT[archfs]} ${T_MOUNT[archivemount]}) | $(fmt ${T_FIND[archivemount]}) | $(mb ${PEAK[archivemount.many]}) |

archfs's mount, split in-process (\`tests/bench/mountcost\`): $split

### Sequential read of db.dump ($dump_mb MB, deflated), cold mount

| reader | s | MB/s | archfs speed-up (this / archfs) | peak memory, MB |
|---|---|---|---|---|
| unzip -p (reference) | $(fmt $t_unzip) | $(mbps $t_unzip) | $(ratio $t_unzip ${T_SEQ[archfs]}) | |
| archfs (ISA-L) | $(fmt ${T_SEQ[archfs]}) | $(mbps ${T_SEQ[archfs]}) | 1.00 | $(mb ${PEAK[archfs.seq]}) |
| archfs (zlib build) | $(fmt ${T_SEQ[archfs-zlib]}) | $(mbps ${T_SEQ[archfs-zlib]}) | $(ratio ${T_SEQ[archfs-zlib]} ${T_SEQ[archfs]}) | |
| fuse-zip | $(fmt ${T_SEQ[fuse-zip]}) | $(mbps ${T_SEQ[fuse-zip]}) | $(ratio ${T_SEQ[fuse-zip]} ${T_SEQ[archfs]}) | $(mb ${PEAK[fuse-zip.seq]}) |
| archivemount (one run) | $(slow ${T_SEQ[archivemount]}) | $( [ "${T_SEQ[archivemount]}" = nan ] && echo n/a || mbps ${T_SEQ[archivemount]}) | $(sratio ${T_SEQ[archivemount]} ${T_SEQ[archfs]}) | $(mb ${PEAK[archivemount.seq]}) |

### Random access into db.sqlite ($sqlite_mb MB, deflated)

Random 4 KiB reads at page-aligned offsets over the whole file on a fresh
mount (the first reads build archfs's seek points); archivemount ran
$SLOW_READS reads, not $RANDOM_READS: each of its backward seeks inflates
from the start of the entry. The sqlite3 query is 200 rowid lookups and an
index range count, on \`file:...?immutable=1\`.

| filesystem | reads | ms per read | archfs speed-up | first byte after open, ms | sqlite3 query, s | peak memory after the reads, MB |
|---|---|---|---|---|---|---|
| archfs | ${N_RAND[archfs]} | $(ms ${T_RAND[archfs]}) | 1.00 | $(ms ${T_FIRST[archfs]}) | $(fmt ${T_SQL[archfs]}) | $(mb ${PEAK[archfs.rand]}) |
| fuse-zip | ${N_RAND[fuse-zip]} | $(ms ${T_RAND[fuse-zip]}) | $(ratio ${T_RAND[fuse-zip]} ${T_RAND[archfs]}) | $(ms ${T_FIRST[fuse-zip]}) | $(fmt ${T_SQL[fuse-zip]}) | $(mb ${PEAK[fuse-zip.rand]}) |
| archivemount | ${N_RAND[archivemount]} | $(ms ${T_RAND[archivemount]}) | $( [ "${T_RAND[archivemount]}" = nan ] && echo "n/a" || ratio ${T_RAND[archivemount]} ${T_RAND[archfs]}) | $(ms ${T_FIRST[archivemount]}) | $( [ "${T_SQL[archivemount]}" = nan ] && echo "over $SLOW_LIMIT" || fmt ${T_SQL[archivemount]}) | $(mb ${PEAK[archivemount.rand]}) |

### cp -r of $files small uploads

| command | s | archfs / this | peak memory, MB |
|---|---|---|---|
| unzip 'uploads/*' (reference) | $(fmt $t_unzip_cp) | $(ratio ${T_CP[archfs]} $t_unzip_cp) | |
| cp -r from an extracted copy on the same disk | $(fmt $t_cp_disk) | $(ratio ${T_CP[archfs]} $t_cp_disk) | |
| archfs | $(fmt ${T_CP[archfs]}) | 1.00 | $(mb ${PEAK[archfs.cp]}) |
| fuse-zip | $(fmt ${T_CP[fuse-zip]}) | $(ratio ${T_CP[archfs]} ${T_CP[fuse-zip]}) | $(mb ${PEAK[fuse-zip.cp]}) |
| archivemount (one run) | $(slow ${T_CP[archivemount]}) | $(sratio ${T_CP[archfs]} ${T_CP[archivemount]}) | $(mb ${PEAK[archivemount.cp]}) |
EOT
)
echo
echo "$report"
printf '%s\n' "$report" | scripts/doc-table.py docs/performance.md bench
bench_random "$size_mb"
bench_dirmode
scripts/bench-small.sh
scripts/bench-remote.sh "$size_mb"
