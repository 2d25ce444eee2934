# SPDX-License-Identifier: MIT
"""Integration tests of remote archives (s3:// and https://) against real
servers on loopback (remote_servers: s3rver, nginx, a range server that
fails on demand): what the local tests check for a local archive, through
range requests, plus missing buckets and keys, refused requests, an object
replaced under a mount, a server that stops mid-read, slow responses,
credentials from the environment and ~/.aws/credentials, and secrets that
never show.  A server that cannot be installed or started fails the test."""
import errno
import json
import os
import random
import shutil
import stat
import subprocess
import tempfile
import zipfile
from email.utils import parsedate_to_datetime

import harness as H
import mkarchive
import remote_servers as R
from harness import Failure, Mount, check, compare_path, fixture, is_mounted
from restore_tests import Live, check_uploads_merged, control, db_dump, run_command, status, wait_final

BUCKET = "backups"
SECRET = "archfsTestSecretKey/9f3c2b7e1d"  # never shown anywhere
TOKEN = "archfsTestSessionToken+77aa31c0"
MB = 1 << 20
BIG = 24 * MB  # the stored entry the failure tests read across
_servers = {}
_uploaded = {}
_keys = {}  # archive -> its number in object keys and paths


def servers_failure(what, e):
    raise Failure("%s could not be started: %s" % (what, e))


def s3():
    """The run's s3rver (started once, stopped at exit), behind a gate that
    lets through only requests signed with SECRET and carrying TOKEN."""
    if "s3" not in _servers:
        try:
            _servers["s3"] = R.S3Server(H.WORK, buckets=(BUCKET,), secret=SECRET, token=TOKEN).start()
        except R.ServerError as e:
            servers_failure("the S3 server (s3rver)", e)
    return _servers["s3"]


def web():
    """The run's nginx (started once, stopped at exit)."""
    if "web" not in _servers:
        try:
            _servers["web"] = R.Nginx(H.WORK, rate="1m").start()
        except R.ServerError as e:
            servers_failure("nginx", e)
    return _servers["web"]


def empty_home():
    home = tempfile.mkdtemp(prefix="home-", dir=H.WORK)
    return home


def s3_env(**kw):
    """The environment of an archfs reading s3rver: its key id, a secret and
    session token to keep hidden, the endpoint, and a HOME without ~/.aws.
    Keywords replace variables; None removes one."""
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[k]  # the tests' own environment holds no AWS setting
    env = {"AWS_ACCESS_KEY_ID": R.S3RVER_KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3().endpoint, "HOME": empty_home()}
    env.update(kw)
    return {k: v for k, v in env.items() if v is not None}


def full_env(env):
    e = dict(os.environ)
    e.update(env)
    return {k: v for k, v in e.items() if v is not None}


def on_s3(archive, key=None):
    """archive uploaded to the run's bucket (once per key): its s3:// URL."""
    key = key or "k%d/%s" % (_keys.setdefault(archive, len(_keys)), os.path.basename(archive))
    if (archive, key) not in _uploaded:
        s3().put(BUCKET, key, archive)
        _uploaded[(archive, key)] = True
    return "s3://%s/%s" % (BUCKET, key)


def on_web(archive, name=None, https=True):
    """archive published by the run's nginx: its URL."""
    name = name or "w%d/%s" % (_keys.setdefault(archive, len(_keys)), os.path.basename(archive))
    if (archive, name) not in _uploaded:
        web().publish(archive, name)
        _uploaded[(archive, name)] = True
    return web().url("/" + name, https)


def ca():
    return ["--ca-file", web().ca_file]


def last_modified(url):
    """The object's Last-Modified (whole seconds) as its server answers a HEAD."""
    if url.startswith("s3://"):
        st, hd = s3().head(BUCKET, url[len("s3://%s/" % BUCKET):])
    else:
        r = subprocess.run(["curl", "-sI", "--cacert", web().ca_file, url], capture_output=True, text=True)
        st = int(r.stdout.split()[1])
        hd = dict(line.split(": ", 1) for line in r.stdout.splitlines()[1:] if ": " in line)
    check(st == 200, "HEAD %s: %d" % (url, st))
    lm = next(v for k, v in hd.items() if k.lower() == "last-modified")
    return int(parsedate_to_datetime(lm.strip()).timestamp())


def compare_remote(mnt, url, archive, src):
    """harness.compare_tree for a remote archive: the root and the implied
    directories carry the object's Last-Modified instead of a file's mtime."""
    exp = mkarchive.expected(archive, last_modified(url))
    with zipfile.ZipFile(archive) as zf:
        for path, e in exp.items():
            if path not in H.VFILES:
                compare_path(mnt, path, e, exp, zf, src, False)
    return exp


def sources(archive):
    """(label, URL, archfs options, environment) of archive on every server kind."""
    return [("s3", on_s3(archive), [], s3_env()),
            ("s3 with --s3-endpoint", on_s3(archive), ["--s3-endpoint", s3().endpoint], s3_env(AWS_ENDPOINT_URL=None)),
            ("https", on_web(archive), ca(), {}),
            ("http", on_web(archive, https=False), [], {})]


def fails(args, env=None, timeout=120):
    """archfs ARGS (MNT replaced by a fresh directory): (exit status, stderr
    lines); the mount point must be left unmounted."""
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=H.WORK)
    argv = [H.ARCHFS] + [mnt if a == "MNT" else a for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=full_env(env or {}))
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
        raise Failure("%s: mounted" % args)
    check(not any(s in r.stderr for s in H.SUSPICIOUS), "%s: sanitizer report: %s" % (args, r.stderr[:2000]))
    return r.returncode, r.stderr.strip().splitlines()


def check_one_line(args, env, rc_want, needle, what):
    rc, lines = fails(args, env)
    check(rc == rc_want, "%s: exit %d, expected %d: %s" % (what, rc, rc_want, lines))
    check(len(lines) == 1 and lines[0].startswith("archfs: ") and needle in lines[0],
          "%s: stderr is not one 'archfs: ' line naming %s: %s" % (what, needle, lines))
    check(SECRET not in lines[0] and TOKEN not in lines[0], what + ": a secret in the error line")
    return lines[0]


def big_archive(seed):
    """An archive with a stored entry of BIG random bytes (seeded) and a
    manifest; the same layout and sizes for every seed, other bytes."""
    path = os.path.join(H.WORK, "big-%d.zip" % seed)
    if not os.path.exists(path):
        rng = random.Random(seed)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("manifest.json", json.dumps({"db_type": "sqlite", "seed": "%04d" % seed}))
            z.writestr(zipfile.ZipInfo("uploads/big.bin", (2025, 11, 20, 10, 0, 0)), rng.randbytes(BIG),
                       compress_type=zipfile.ZIP_STORED)
    return path


def entry_bytes(archive, name="uploads/big.bin"):
    with zipfile.ZipFile(archive) as z:
        return z.read(name)


def pread_errno(fd, n, off):
    """(bytes, 0) of a pread, or (None, errno)."""
    try:
        return os.pread(fd, n, off), 0
    except OSError as e:
        return None, e.errno


# ---------------------------------------------------------------- the tests

@H.timeout(600)
def t_remote_tree_matches_source():
    """The application archive over s3 (endpoint from the environment and
    from --s3-endpoint), https and http: every path's type, mode (setuid
    stripped, 0600 settings), size, mtime, owner, listing and bytes."""
    a, src = fixture("app")
    for label, url, opts, env in sources(a):
        with Mount(url, *opts, env=env) as m:
            try:
                compare_remote(m, url, a, src)
            except Failure as e:
                raise Failure("%s: %s" % (label, e))
            check(stat.S_IMODE(os.stat(os.path.join(m, "settings.json")).st_mode) == 0o600, label + ": settings mode")


def t_remote_https_needs_a_trusted_certificate():
    """A self-signed server is refused without --ca-file (the system CA
    store): exit 1 and one line naming the URL."""
    a, _ = fixture("app")
    url = on_web(a)
    with Mount(url, *ca()) as m:  # with the certificate as its CA, the same URL mounts
        check(open(os.path.join(m, "manifest.json"), "rb").read() == zipfile.ZipFile(a).read("manifest.json"),
              "manifest.json differs")
    check_one_line([url, "MNT"], {}, 1, url, "https without --ca-file")
    rc, lines = fails(["verify", url])
    check(rc == 3 and len(lines) == 1 and url in lines[0], "verify without --ca-file: %d %s" % (rc, lines))
    bad = os.path.join(H.WORK, "not-a-ca.pem")
    open(bad, "w").write("not a certificate\n")
    rc, lines = fails(["--ca-file", bad, url, "MNT"])
    check(rc != 0 and len(lines) == 1 and lines[0].startswith("archfs: "), "a bad --ca-file: %d %s" % (rc, lines))


def t_remote_reads_only_what_it_needs():
    """Mount, listing and a small file of a 24 MiB archive over https fetch
    a fraction of the object (nginx's access log: range requests, bytes
    sent), and reading the large entry fetches it."""
    a = big_archive(1)
    web().publish(a, "ranges/backup.zip")
    url = web().url("/ranges/backup.zip")

    def sent():
        lines = [x.split() for x in web().access_lines() if x.split()[1:2] == ["/ranges/backup.zip"]]
        return len(lines), sum(int(x[-1]) for x in lines if x[-1].isdigit())
    with Mount(url, *ca()) as m:
        check(sorted(os.listdir(m)) == sorted(["manifest.json", "uploads"] + H.VFILES), "listing %s" % os.listdir(m))
        check(open(os.path.join(m, "manifest.json"), "rb").read() == zipfile.ZipFile(a).read("manifest.json"),
              "manifest.json differs")
        n, nbytes = sent()
        check(n >= 1 and nbytes < BIG // 4, "mount, listing and manifest.json fetched %d bytes in %d requests "
              "of a %d-byte object" % (nbytes, n, os.path.getsize(a)))
        with open(os.path.join(m, "uploads/big.bin"), "rb") as f:
            check(f.read() == entry_bytes(a), "uploads/big.bin differs")
    check(sent()[1] >= BIG, "reading the whole entry fetched %d bytes" % sent()[1])


@H.timeout(600)
def t_remote_sqlite3_on_mounted_db():
    """sqlite3 queries on the mounted db.sqlite of an s3 and an https
    archive: the source's rows, integrity_check ok."""
    a, src = fixture("app", db_size=3 << 20)
    q = "select count(*), sum(length(notes)) from time_entries; select count(*) from users;"
    want = subprocess.run(["sqlite3", os.path.join(src, "db.sqlite"), q], capture_output=True, text=True).stdout
    check(want.strip(), "the source database has no rows")
    for label, url, opts, env in sources(a)[::2]:
        with Mount(url, *opts, env=env) as m:
            db = os.path.join(m, "db.sqlite")
            got = subprocess.run(["sqlite3", "-readonly", db, q], capture_output=True, text=True, timeout=120)
            check(got.returncode == 0 and got.stdout == want, "%s: sqlite3: %r %r, expected %r" % (
                label, got.stdout, got.stderr, want))
            ic = subprocess.run(["sqlite3", "-readonly", db, "PRAGMA integrity_check"], capture_output=True,
                                text=True, timeout=120)
            check(ic.stdout.strip() == "ok", "%s: integrity_check: %s %s" % (label, ic.stdout, ic.stderr))


@H.timeout(600)
def t_remote_cp_r_uploads():
    """cp -r of the uploads of an s3 and an https mount equals the source
    tree byte for byte (diff -r)."""
    a, src = fixture("app")
    for label, url, opts, env in sources(a)[::2]:
        dest = tempfile.mkdtemp(prefix="cp-", dir=H.WORK)
        with Mount(url, *opts, env=env) as m:
            r = subprocess.run(["cp", "-r", os.path.join(m, "uploads"), dest], capture_output=True, text=True,
                               timeout=300)
            check(r.returncode == 0, "%s: cp -r: %s" % (label, r.stderr))
        d = subprocess.run(["diff", "-r", "--no-dereference", os.path.join(src, "uploads"),
                            os.path.join(dest, "uploads")], capture_output=True, text=True)
        check(d.returncode == 0, "%s: the copy differs from the source: %s" % (label, d.stdout[:1000]))
        shutil.rmtree(dest)


@H.timeout(600)
def t_remote_restore_sqlite():
    """archfs verify and restore of an s3 archive (archfs and archfs-cli),
    and a restore through .control on an https mount: the live database
    becomes the archive's, the uploads are merged."""
    a, src = fixture("app")
    url, env = on_s3(a), s3_env()
    cli = os.path.join(os.path.dirname(H.ARCHFS), "archfs-cli")
    for exe in (H.ARCHFS, cli):
        r = subprocess.run([exe, "verify", url], capture_output=True, text=True, timeout=300, env=full_env(env))
        check(r.returncode == 0 and r.stdout.splitlines()[-1:] == ["100 done"],
              "%s verify %s: %d %s" % (os.path.basename(exe), url, r.returncode, r.stderr[-1000:]))
        live = Live()
        before = live.state()
        r = subprocess.run([exe, "restore", url] + live.opts(), capture_output=True, text=True, timeout=300,
                           env=full_env(env))
        check(r.returncode == 0, "%s restore %s: %d %s" % (os.path.basename(exe), url, r.returncode, r.stderr[-1000:]))
        check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "restore from s3: the database differs")
        check_uploads_merged(live, a, src, before[1])
    live = Live()
    before = live.state()
    url = on_web(a)
    s = run_command(url, live.opts() + ca())
    check(s["state"] == "done", "restore through .control from https: %s %s" % (s["state"], s["error"]))
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "restore from https: the database differs")
    check_uploads_merged(live, a, src, before[1])


@H.timeout(600)
def t_remote_restore_postgresql():
    """archfs restore s3://... into PostgreSQL (the test cluster), and
    through .control on an s3 mount: the target's rows become the source's."""
    import pg_tests as P
    archive, source = P.pg_archive()
    url, env = on_s3(archive), s3_env()
    live = P.new_db(3, 10, "old")
    opts, _ = P.target(live)
    r = subprocess.run([H.ARCHFS, "restore", url] + opts, capture_output=True, text=True, timeout=300,
                       env=full_env(env))
    check(r.returncode == 0, "restore %s: %d %s" % (url, r.returncode, r.stderr[-1000:]))
    check(P.content(live) == P.content(source), "restore from s3: the database's rows are not the source's")
    live = P.new_db(3, 10, "old")
    opts, _ = P.target(live)
    with Mount(url, *opts, env=env) as m:
        check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
        s = wait_final(m)
        check(s["state"] == "done", "restore through .control: %s %s" % (s["state"], s["error"]))
    check(P.content(live) == P.content(source), "restore through .control: the rows are not the source's")


def t_remote_missing_bucket_and_key():
    """A missing bucket, a missing key and a missing https path: the mount
    fails with exit 1 and one line naming the URL; verify and restore exit 3
    with one line; nothing is mounted."""
    a, _ = fixture("app")
    on_s3(a)
    env = s3_env()
    live = Live()
    before = live.state()
    with Mount(on_s3(a), env=env) as m:  # the bucket and the run's object are there
        check("manifest.json" in os.listdir(m), "the object's listing lacks manifest.json")
    for url, opts in (("s3://no-such-bucket-archfs/backup.zip", []), ("s3://%s/no/such/key.zip" % BUCKET, []),
                      (web().url("/no/such/file.zip"), ca()), (web().url("/no/such/file.zip", False), [])):
        check_one_line(opts + [url, "MNT"], env, 1, url, "mount of " + url)
        for args in (["verify", url], ["restore", url] + live.opts()):
            rc, lines = fails(args[:2] + opts + args[2:], env)
            check(rc == 3 and len(lines) == 1 and url in lines[0], "%s %s: exit %d: %s" % (args[0], url, rc, lines))
            check(not any(SECRET in x or TOKEN in x for x in lines), args[0] + ": a secret in the error line")
    check(live.state() == before, "a failed restore changed the target")


def t_remote_refused_request():
    """A request the server refuses (nginx's 403 path; s3rver's 403 for an
    unknown access key id): exit 1 and one line naming the URL at mount,
    exit 3 at verify."""
    a, _ = fixture("app")
    web().publish(a, "forbidden/backup.zip")
    url = web().url("/forbidden/backup.zip")
    with Mount(on_web(a), *ca()) as m:  # the same bytes outside the refused path mount
        check("manifest.json" in os.listdir(m), "the archive's listing lacks manifest.json")
    check_one_line(ca() + [url, "MNT"], {}, 1, url, "403 at mount")
    rc, lines = fails(["verify"] + ca() + [url])
    check(rc == 3 and len(lines) == 1 and url in lines[0], "verify of a 403: %d %s" % (rc, lines))
    s3url = on_s3(a)
    check_one_line([s3url, "MNT"], s3_env(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000"), 1, s3url,
                          "an unknown access key id")
    rc, lines = fails(["verify", s3url], s3_env(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000"))
    check(rc == 3 and len(lines) == 1, "verify with an unknown key id: %d %s" % (rc, lines))


def replaced_reads(mnt, new_object, log):
    """Reads uploads/big.bin partly, lets new_object() replace the object,
    reads on: every read that returns data returns the old archive's bytes,
    a read past what was fetched fails with EIO, and log() gains exactly one
    line saying the archive changed since it was opened."""
    old, new = entry_bytes(big_archive(1)), entry_bytes(big_archive(2))
    check(old[:MB] != new[:MB] and len(old) == len(new), "the two archives do not differ")
    path = os.path.join(mnt, "uploads/big.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        check(os.pread(fd, MB, 0) == old[:MB], "the first MiB differs before the change")
        new_object()
        errs = []
        for off in (BIG - 2 * MB, BIG // 2, BIG - MB):
            got, err = pread_errno(fd, 256 * 1024, off)
            if got is not None:
                check(got == old[off:off + len(got)], "a read at %d after the change returned %s bytes" % (
                    off, "the new archive's" if got == new[off:off + len(got)] else "mixed or other"))
            else:
                errs.append(err)
        check(errs and all(e == errno.EIO for e in errs), "reads after the change: errnos %s, expected EIO" % errs)
        fd2 = os.open(path, os.O_RDONLY)
        try:
            got, err = pread_errno(fd2, 4096, BIG - 3 * MB)
            check(err == errno.EIO or got == old[BIG - 3 * MB:BIG - 3 * MB + 4096],
                  "a new open after the change read %s" % ("the new bytes" if got == new[BIG - 3 * MB:][:4096] else
                                                           "errno %s" % err))
        finally:
            os.close(fd2)
    finally:
        os.close(fd)
    check(is_mounted(mnt), "the mount went away")
    text = log()
    n = sum("changed since it was opened" in line for line in text.splitlines())
    check(n == 1, "%d log lines say the archive changed since it was opened: %s" % (n, text[-1500:]))
    check(SECRET not in text and TOKEN not in text, "a secret in the log")


@H.timeout(600)
def t_remote_object_replaced_while_mounted():
    """An object replaced under a mount (s3: a new upload under the same
    key; https: nginx serves a new file at the same path, same size, another
    mtime): reads fail with EIO and one log line, never the new bytes."""
    old, new = big_archive(1), big_archive(2)
    key = "replaced/backup.zip"
    s3().put(BUCKET, key, old)
    mount = Mount("s3://%s/%s" % (BUCKET, key), "--remote-cache", "4", env=s3_env())
    with mount as m:
        replaced_reads(m, lambda: s3().put(BUCKET, key, new), mount.stderr)
    web().publish(old, "replaced/backup.zip")
    mount = Mount(web().url("/replaced/backup.zip"), "--remote-cache", "4", *ca())
    with mount as m:
        st = os.stat(old)
        replaced_reads(m, lambda: web().publish(new, "replaced/backup.zip", mtime=st.st_mtime + 3600),
                       mount.stderr)


def new_lines(mount, before):
    return mount.stderr().splitlines()[before:]


@H.timeout(600)
def t_remote_server_stops_mid_read():
    """A server that fails: 503s are retried (the read returns the right
    bytes after them); a server that cuts every response mid-body or stops
    listening makes a read fail with EIO (after the retries) and a log line
    naming the URL (one per failed fetch, not one per try), the mount stays
    up, and once the server is back a fresh read returns the right bytes."""
    archive = big_archive(1)
    data = entry_bytes(archive)
    srv = R.RangeServer(archive).start()
    try:
        mount = Mount(srv.url(), "--remote-cache", "4")
        with mount as m:
            path = os.path.join(m, "uploads/big.bin")
            fd = os.open(path, os.O_RDONLY)
            try:
                check(os.pread(fd, MB, 0) == data[:MB], "the first MiB differs")
                # 503 twice, then served: a retry gets the bytes
                srv.fail_left, n0 = 2, srv.requests
                got, err = pread_errno(fd, 65536, BIG // 2)
                check(err == 0 and got == data[BIG // 2:BIG // 2 + 65536], "a read through two 503s: errno %s" % err)
                check(srv.requests - n0 >= 3, "only %d requests for a read through two 503s" % (srv.requests - n0))
                for how, off in (("cut", BIG - 2 * MB), ("stop", BIG - 6 * MB)):
                    before = len(mount.stderr().splitlines())
                    if how == "cut":
                        srv.mode = "cut"
                    else:
                        srv.stop()
                    got, err = pread_errno(fd, 65536, off)
                    check(err == errno.EIO, "%s: a read returned %s, expected EIO" % (
                        how, "errno %s" % err if got is None else "%d bytes" % len(got)))
                    check(is_mounted(m), how + ": the mount went away")
                    # one line per failed fetch: the read's, and at most the read-ahead's (archfs's, the kernel's)
                    lines = new_lines(mount, before)
                    check(1 <= len(lines) <= 3 and all("backup.zip" in x for x in lines),
                          "%s: %d log lines for the failed read, each naming the URL expected: %s" % (
                              how, len(lines), lines))
                    if how == "cut":
                        srv.mode = "ok"
                    else:
                        srv.start()
                    with open(path, "rb") as f:
                        f.seek(off)
                        check(f.read(65536) == data[off:off + 65536], how + ": a fresh read after the server came "
                              "back differs")
            finally:
                os.close(fd)
    finally:
        srv.stop()


@H.timeout(600)
def t_remote_slow_responses():
    """nginx's limit_rate (1 MB/s): a mount of the slow path still shows
    every byte right, and sqlite3 reads the database."""
    a, src = fixture("app")
    web().publish(a, "slowfx/backup.zip")
    url = web().url("/slow/slowfx/backup.zip")
    with Mount(url, *ca()) as m:
        compare_remote(m, url, a, src)
        r = subprocess.run(["sqlite3", "-readonly", os.path.join(m, "db.sqlite"), "select count(*) from users"],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0 and r.stdout.strip().isdigit(),
              "sqlite3 on the slow mount: %s %s" % (r.stdout, r.stderr))
    slow = [x for x in web().access_lines() if x.startswith("GET /slow/slowfx/")]
    check(slow, "no request went to the slow path")


def t_remote_credentials_from_profile_and_env():
    """AWS_PROFILE picks a ~/.aws/credentials section (the server answers
    403 to an unknown key id: the default section's key fails, the
    profile's works); the environment's keys win over the file; requests
    are signed with the secret key and carry the session token (a wrong
    secret or no token: 403)."""
    a, _ = fixture("app")
    url = on_s3(a)
    want = zipfile.ZipFile(a).read("manifest.json")
    home = empty_home()
    before = len(s3().gate.refused)  # refusals of this test only
    os.makedirs(os.path.join(home, ".aws"), mode=0o700)
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = AKIADEFAULTUNKNOWN00\naws_secret_access_key = %s\n\n"
                "[archfs-test]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n"
                % (SECRET, R.S3RVER_KEY, SECRET, TOKEN))
    base = dict(HOME=home, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_SESSION_TOKEN=None)
    mount = Mount(url, env=full_env(s3_env(AWS_PROFILE="archfs-test", **base)))
    with mount as m:
        check(open(os.path.join(m, "manifest.json"), "rb").read() == want, "AWS_PROFILE: manifest differs")
    check_one_line([url, "MNT"], s3_env(**base), 1, url, "the default profile's unknown key")
    with Mount(url, env=full_env(s3_env(HOME=home))) as m:  # the environment's key over [default]'s
        check(open(os.path.join(m, "manifest.json"), "rb").read() == want, "env keys: manifest differs")
    check_one_line([url, "MNT"], s3_env(AWS_SECRET_ACCESS_KEY="notTheSecret/0000"), 1, url, "a wrong secret key")
    check_one_line([url, "MNT"], s3_env(AWS_SESSION_TOKEN=None), 1, url, "no session token")
    refused = [r for r in s3().gate.refused[before:] if r[2] in ("SignatureDoesNotMatch", "InvalidToken")]
    check(refused, "the gate refused no request for a wrong secret or a missing token")
    check_one_line([url, "MNT"], s3_env(HOME=home, AWS_ACCESS_KEY_ID="AKIAENVUNKNOWN000000",
                                        AWS_PROFILE="archfs-test"), 1, url,
                   "the environment's unknown key over the profile")


def t_remote_secrets_never_shown():
    """The secret key and session token appear in no .status, .log, stderr,
    error line or argv of the daemon, during a mount, a restore and a
    failing restore; a password in an https URL is not in the error line."""
    a, src = fixture("app")
    url, env = on_s3(a), s3_env()
    live = Live()
    mount = Mount(url, *live.opts(), env=env)
    with mount as m:
        pid = mount.proc.pid
        argv = open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace")
        check(SECRET not in argv and TOKEN not in argv, "the daemon's argv holds a secret: %r" % argv)
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m)
        check(s["state"] == "done", "restore: %s" % s["error"])
        shown = open(os.path.join(m, ".status")).read() + open(os.path.join(m, ".log")).read()
        check(url in shown, ".status names no archive URL: " + shown[:500])
        check(SECRET not in shown and TOKEN not in shown, "a secret in .status or .log")
    err = mount.stderr()
    check(SECRET not in err and TOKEN not in err, "a secret on the daemon's stderr")
    for args in (["verify", "s3://%s/no/such.zip" % BUCKET], ["restore", url, "--database", "sqlite:////no/dir/x.db"],
                 ["s3://%s/no/such.zip" % BUCKET, "MNT"]):
        rc, lines = fails(args, env)
        check(rc != 0 and not any(SECRET in x or TOKEN in x for x in lines), "%s: %d %s" % (args, rc, lines))
    pw = "urlPassword5150"
    bad = web().url("/no/such.zip").replace("://", "://user:%s@" % pw)
    rc, lines = fails(ca() + [bad, "MNT"])
    check(rc != 0 and len(lines) == 1 and pw not in lines[0], "a URL with a password: %d %s" % (rc, lines))


@H.timeout(600)
def t_remote_s3_directory_mode():
    """s3://BUCKET/PREFIX/ (directory mode): one directory per *.zip object
    (no other object) and latest, a link to the newest by name; an object
    uploaded later shows on the next listing, a deleted one goes."""
    a, src = fixture("app")
    names = ["timetracker_backup_20261118_101502", "timetracker_backup_20261119_101502"]
    for n in names:
        s3().put(BUCKET, "daily/%s.zip" % n, a)
    s3().put(BUCKET, "daily/notes.txt", b"not an archive")
    url = "s3://%s/daily/" % BUCKET
    with Mount(url, env=s3_env()) as m:
        check(sorted(os.listdir(m)) == sorted(names + ["latest"]), "listing: %s" % os.listdir(m))
        latest = os.readlink(os.path.join(m, "latest"))
        check(latest == names[1], "latest -> %s, expected %s" % (latest, names[1]))
        with zipfile.ZipFile(a) as zf:
            check(open(os.path.join(m, names[0], "manifest.json"), "rb").read() == zf.read("manifest.json"),
                  "manifest differs")
            check(open(os.path.join(m, "latest", "settings.json"), "rb").read() == zf.read("settings.json"),
                  "latest/settings.json differs")
        third = "timetracker_backup_20261120_101502"
        s3().put(BUCKET, "daily/%s.zip" % third, a)
        check(third in os.listdir(m), "a new object is not in the next listing: %s" % os.listdir(m))
        check(os.readlink(os.path.join(m, "latest")) == third, "latest does not follow the newest object")
        s3().delete(BUCKET, "daily/%s.zip" % names[0])
        check(names[0] not in os.listdir(m), "a deleted object is still listed: %s" % os.listdir(m))
