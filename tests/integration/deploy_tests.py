# SPDX-License-Identifier: MIT
"""Deployment (docs/deploy.md): the maintenance switch in front of the
application and inside it, and the restore without FUSE or network.

- nginx, started here as root with workers as www-data, runs the server
  block docs/deploy.md shows (only its upstream, listen address and flag
  path changed): a real restore with --flag-file, held at its snapshot
  gate (restore/job.h afs_job_test_gate), makes every request a 503 with
  Retry-After; before and after, the application's pages pass through.
- The application's own switch (tests/integration/app/maintenance.py,
  shown verbatim in docs/deploy.md) under gunicorn answers 503 while the
  flag file exists and, on PostgreSQL, while archfs holds its advisory
  lock.
- archfs-cli restores into PostgreSQL through its Unix socket inside
  unshare --net --mount with /dev/fuse replaced by /dev/null."""
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import urllib.parse

import harness as H
from harness import Mount, check
from restore_tests import control, gates_env, open_gate, read, status, wait_final, wait_gate
import app_tests as A
import pg_tests as P

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_MD = os.path.join(ROOT, "docs", "deploy.md")
MAINTENANCE_PY = os.path.join(A.APP_DIR, "maintenance.py")
NGINX = "/usr/sbin/nginx"
# the restore brings the backup (r1) to the application's head (r2) on its staged copy
UPGRADE = "cd %s && FLASK_APP=app PYTHONDONTWRITEBYTECODE=1 %s -m flask db upgrade" % (shlex.quote(A.APP_DIR), A.PY)
PASSWORD = "Fl4g-s3cret"


def doc_block(marker, lang):
    """The fenced code block that follows <!-- marker --> in docs/deploy.md."""
    with open(DEPLOY_MD) as f:
        text = f.read()
    m = re.search(r"<!-- %s -->\n```%s\n(.*?)```\n" % (re.escape(marker), lang), text, re.S)
    check(m, "docs/deploy.md has no %s block after <!-- %s -->" % (lang, marker))
    return m.group(1)


def shared_dir():
    """A directory nginx's user can search (0755 under /tmp), unlike the tests' 0700 work directory."""
    d = tempfile.mkdtemp(prefix="archfs-deploy-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def check_maintenance(port, path, n=10):
    """n requests for path: every one 503 with Retry-After: 30 and the short body."""
    for _ in range(n):
        code, headers, body = H.http_get(port, path)
        check(code == 503, "GET %s during the restore: %d, not 503: %r" % (path, code, body[:300]))
        check(headers.get("retry-after") == "30", "GET %s: 503 without Retry-After: 30: %s" % (path, headers))
        check(body == b"Restoring a backup: try again shortly.\n", "GET %s: 503 body %r" % (path, body[:300]))


def as_user(uid, gid, argv):
    return subprocess.run(argv, capture_output=True, preexec_fn=lambda: (os.setgid(gid), os.setuid(uid)), timeout=30)


def check_flag_file(flag, pid, archive, secrets=()):
    """The flag file while the restore runs: root's, 0644, readable by nginx's user, and holding
    exactly pid, archive and started_at, none of secrets."""
    st = os.stat(flag)
    check(stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0, "flag file mode %o owner %d" % (st.st_mode, st.st_uid))
    raw = open(flag, "rb").read()
    www = pwd.getpwnam("www-data")
    r = as_user(www.pw_uid, www.pw_gid, ["cat", flag])
    check(r.returncode == 0 and r.stdout == raw, "www-data cannot read the flag file: %r" % r.stderr)
    doc = json.loads(raw)
    check(sorted(doc) == ["archive", "pid", "started_at"], "flag file keys: %s" % sorted(doc))
    check(doc["pid"] == pid and doc["archive"] == archive, "flag file content: %s" % doc)
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", doc["started_at"]), "started_at: %r" % doc["started_at"])
    for s in secrets:
        check(s.encode() not in raw, "the flag file holds the password: %r" % raw)


class Nginx:
    """nginx -c CONF -p DIR, as root with workers as www-data (user www-data), in front of the
    application on app_port: the server block of docs/deploy.md with its upstream, listen address
    and flag path put to this test's. Its logs and temporary files stay in dir (which must be
    searchable by www-data); the process group is stopped on exit."""

    def __init__(self, dir, flag, app_port):
        self.dir, self.port = dir, H.free_port()
        site = doc_block("nginx-maintenance", "nginx")
        for old, new in (("server app:8000;", "server 127.0.0.1:%d;" % app_port),
                         ("listen 80;", "listen 127.0.0.1:%d;" % self.port),
                         ("/srv/app/run/restore.flag", flag)):
            check(old in site, "the nginx block of docs/deploy.md lacks %r" % old)
            site = site.replace(old, new)
        tmp = os.path.join(dir, "nginx-tmp")
        os.mkdir(tmp)
        os.chmod(tmp, 0o755)
        self.conf = os.path.join(dir, "nginx.conf")
        self.error_log = os.path.join(dir, "error.log")
        with open(self.conf, "w") as f:
            f.write("user www-data;\nworker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s info;\n"
                    "events { worker_connections 64; }\nhttp {\naccess_log %s/access.log;\n"
                    % (dir, self.error_log, dir))
            for what in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                f.write("%s_temp_path %s/%s;\n" % (what, tmp, what))
            f.write(site + "}\n")

    def __enter__(self):
        argv = [NGINX, "-c", self.conf, "-p", self.dir + "/", "-e", self.error_log]
        r = subprocess.run(argv + ["-t"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "nginx -t: " + r.stderr)
        self.out = tempfile.TemporaryFile(dir=H.WORK)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            H.wait_answering(self.proc, self.port, "/health", "nginx", self.log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def worker_uids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        uids = set()
        for pid in out:
            with open("/proc/%s/status" % pid) as f:
                uids.add(int(next(ln for ln in f if ln.startswith("Uid:")).split()[1]))
        return uids

    def __exit__(self, *exc):
        H.end_group(self.proc)
        return False


def held_restore(m, gates):
    """Starts the restore and waits until it stands at its snapshot gate: the flag raised, the
    PostgreSQL lock taken, nothing changed yet. The caller opens the gate."""
    check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
    wait_gate(gates, "snapshot", m)
    check(read(m, ".restore_in_progress") == "1\n", "the restore does not show as in progress")


def finish(m):
    s = wait_final(m, timeout=120)
    check(s["state"] == "done", "restore %s: %s\n%s" % (s["state"], s["error"], read(m, ".log")[-2000:]))


# ---------------------------------------------------------------- the tests

def t_deploy_docs_show_the_tested_code():
    """docs/deploy.md shows the application's maintenance switch exactly as the tests run it."""
    with open(MAINTENANCE_PY) as f:
        code = f.read()
    check(doc_block("maintenance.py", "python") == code,
          "the maintenance.py block of docs/deploy.md differs from tests/integration/app/maintenance.py")


def t_deploy_nginx_maintenance_switch():
    """nginx's maintenance switch, as docs/deploy.md configures it, against a real restore."""
    check(os.geteuid() == 0, "nginx with workers as www-data needs root")
    a = A.SqliteApp()
    shared = shared_dir()
    try:
        os.mkdir(os.path.join(shared, "run"))
        os.chmod(os.path.join(shared, "run"), 0o755)
        flag = os.path.join(shared, "run", "restore.flag")
        gates, env = gates_env("snapshot")
        with A.Gunicorn(a.url) as g, Nginx(shared, flag, g.port) as nx:
            check(nx.worker_uids() == {pwd.getpwnam("www-data").pw_uid}, "nginx workers run as %s" % nx.worker_uids())
            code, _, body = H.http_get(nx.port, "/entries")
            check(code == 200, "GET /entries through nginx before the restore: %d %r" % (code, body[:300]))
            A.check_old(json.loads(body))
            mount = Mount(a.archive, *a.opts("--migrate", UPGRADE, "--flag-file", flag), env=env)
            with mount as m:
                try:
                    held_restore(m, gates)
                    check_flag_file(flag, mount.proc.pid, a.archive)
                    check_maintenance(nx.port, "/entries")
                    check_maintenance(nx.port, "/health", n=2)
                    code, _, _ = H.http_get(g.port, "/entries")
                    check(code == 200, "the application itself (no switch in it) answered %d" % code)
                finally:
                    open_gate(gates, "snapshot")  # also after a failure: the daemon can end
                finish(m)
            check(not os.path.exists(flag), "the flag file outlived the restore")
            code, _, body = H.http_get(nx.port, "/entries")
            check(code == 200, "GET /entries through nginx after the restore: %d %r" % (code, body[:300]))
            A.check_new(json.loads(body))
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def t_deploy_nginx_blind_to_an_unsearchable_flag_dir():
    """nginx's workers (www-data) test the flag file: in a directory they cannot search, the
    switch never fires (a 'Permission denied' line in nginx's error log); made searchable, it does."""
    check(os.geteuid() == 0, "nginx with workers as www-data needs root")
    shared = shared_dir()
    try:
        run = os.path.join(shared, "run")
        os.mkdir(run, 0o700)
        flag = os.path.join(run, "restore.flag")
        with open(flag, "w") as f:
            f.write('{"archive": "x.zip", "pid": 1, "started_at": "2026-11-26T10:00:00"}\n')
        os.chmod(flag, 0o644)
        with A.Gunicorn("sqlite:///" + os.path.join(shared, "empty.db")) as g, Nginx(shared, flag, g.port) as nx:
            code, _, _ = H.http_get(nx.port, "/health")
            check(code == 200, "nginx saw a flag file in a directory its workers cannot search: %d" % code)
            check("Permission denied" in nx.log(), "nginx logged no permission error: " + nx.log())
            os.chmod(run, 0o755)
            check_maintenance(nx.port, "/health", n=2)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def t_deploy_flask_switch_flag_file():
    """The application's own switch (no proxy): 503 with Retry-After while the flag file exists."""
    a = A.SqliteApp()
    flag = os.path.join(tempfile.mkdtemp(prefix="run-", dir=H.WORK), "restore.flag")
    gates, env = gates_env("snapshot")
    with A.Gunicorn(a.url, env={"ARCHFS_MAINTENANCE": "1", "ARCHFS_FLAG_FILE": flag}) as g:
        code, _, body = H.http_get(g.port, "/entries")
        check(code == 200, "GET /entries before the restore: %d %r" % (code, body[:300]))
        A.check_old(json.loads(body))
        mount = Mount(a.archive, *a.opts("--migrate", UPGRADE, "--flag-file", flag), env=env)
        with mount as m:
            try:
                held_restore(m, gates)
                check_maintenance(g.port, "/entries")
                code, _, _ = H.http_get(g.port, "/health")
                check(code == 200, "/health during the restore: %d" % code)
            finally:
                open_gate(gates, "snapshot")  # also after a failure: the daemon can end
            finish(m)
        code, _, body = H.http_get(g.port, "/entries")
        check(code == 200, "GET /entries after the restore: %d %r" % (code, body[:300]))
        A.check_new(json.loads(body))


def pg_app_databases():
    """(live, source) PostgreSQL databases of the application at its head revision: live with the
    live data set, source with the backup's; and an archive of the source."""
    A._counter[0] += 1
    live, src = ("dep%d_%d_%s" % (os.getpid(), A._counter[0], n) for n in ("live", "backup"))
    for name in (live, src):
        A.pg_admin('CREATE DATABASE "%s"' % name)
    A.flask(A.pg_url(live), "db", "upgrade")
    A.flask(A.pg_url(live), "seed", "live")
    A.flask(A.pg_url(src), "db", "upgrade")
    A.flask(A.pg_url(src), "seed", "backup")
    d = tempfile.mkdtemp(prefix="dep-pg-", dir=H.WORK)
    dump = os.path.join(d, "db.dump")
    host, port = A.pg_server()
    r = subprocess.run([A.pg_bin("pg_dump"), "-Fc", "-h", host, "-p", port, "-U", "postgres", "-f", dump, src],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "pg_dump: " + r.stderr)
    archive = os.path.join(d, "timetracker_backup_20261120_101502.zip")
    A.write_archive(archive, "db.dump", dump, "postgresql", A.R2)
    return live, src, archive


def t_deploy_flask_switch_pg_advisory_lock():
    """The application's own switch on PostgreSQL, with no flag file: 503 with Retry-After while
    archfs holds its advisory lock; the flag file archfs writes holds no password."""
    A.pg_server()
    live, src, archive = pg_app_databases()
    shared = shared_dir()
    try:
        url = P.url(live, "postgres", PASSWORD)
        flag = os.path.join(shared, "restore.flag")
        snapdir = tempfile.mkdtemp(prefix="snap-", dir=H.WORK)
        gates, env = gates_env("snapshot")
        with A.Gunicorn(url, env={"ARCHFS_MAINTENANCE": "1"}) as g:
            code, _, body = H.http_get(g.port, "/entries")
            check(code == 200, "GET /entries before the restore: %d %r" % (code, body[:300]))
            A.check_old(json.loads(body))
            mount = Mount(archive, "--database", url, "--snapshot-dir", snapdir, "--flag-file", flag, env=env)
            with mount as m:
                try:
                    held_restore(m, gates)
                    check(P.lock_held(live), "the advisory lock is not held at the snapshot gate")
                    check_flag_file(flag, mount.proc.pid, archive, (PASSWORD, urllib.parse.quote(PASSWORD)))
                    check_maintenance(g.port, "/entries")
                finally:
                    open_gate(gates, "snapshot")  # also after a failure: the daemon can end
                finish(m)
            check(not P.lock_held(live), "the advisory lock outlived the restore")
            code, _, body = H.http_get(g.port, "/entries")
            check(code == 200, "GET /entries after the restore: %d %r" % (code, body[:300]))
            A.check_new(json.loads(body))
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for name in (live, src):
            A.pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


# run inside the namespaces: hide /dev/fuse, record what the command could reach, then run it
ISOLATED = r"""set -e
mount --bind /dev/null /dev/fuse
stat -c '%t:%T' /dev/fuse > "$1/fuse"
tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > "$1/net"
shift
exec "$@"
"""


def isolated(argv):
    """argv in a network namespace of its own and a mount namespace where /dev/fuse is /dev/null:
    (completed process, /dev/fuse's major:minor there, its network interfaces)."""
    d = tempfile.mkdtemp(prefix="isolated-", dir=H.WORK)
    r = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "/bin/sh", "-c", ISOLATED,
                        "isolated", d, *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    with open(os.path.join(d, "fuse")) as f, open(os.path.join(d, "net")) as g:
        return r, f.read().strip(), g.read().split()


def t_deploy_cli_restore_without_fuse_or_network():
    """archfs-cli restore into PostgreSQL through its Unix socket, in a network namespace of
    its own (only a loopback that is down) and a mount namespace where /dev/fuse is /dev/null:
    the restore needs neither. There, a FUSE mount fails and so does a database over TCP."""
    P.server()
    cli = os.path.join(os.path.dirname(H.ARCHFS), "archfs-cli")
    archive, src = P.pg_archive(users=7, entries=500)
    live = P.new_db(3, 10, "old")
    try:
        want, before = P.content(src), P.content(live)
        check(before != want, "the live database already holds the archive's rows")
        fuse_before = os.stat("/dev/fuse").st_rdev
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=H.WORK)
        r, _, _ = isolated([H.ARCHFS, archive, mnt])
        check(r.returncode != 0 and "fuse: mount failed" in r.stderr and not H.is_mounted(mnt),
              "archfs mounted without /dev/fuse: %d %s" % (r.returncode, r.stderr))
        _, port = P.server()
        tcp = "postgresql://postgres:%s@127.0.0.1:%s/%s" % (PASSWORD, port, live)
        r, _, _ = isolated([cli, "verify", archive, "--database", tcp])
        check(r.returncode != 0 and "Network is unreachable" in r.stderr, "a database over TCP was reached: %d %s" % (
            r.returncode, r.stderr[-1000:]))
        snapdir = tempfile.mkdtemp(prefix="snap-", dir=H.WORK)
        r, fuse, net = isolated([cli, "restore", archive, "--database", P.url(live, "postgres", PASSWORD),
                                 "--snapshot-dir", snapdir])
        check(r.returncode == 0, "the isolated restore: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
        check(fuse == "1:3", "/dev/fuse was not hidden: %s" % fuse)
        check(net == ["lo"], "network interfaces: %s" % net)
        check(os.stat("/dev/fuse").st_rdev == fuse_before, "the bind mount over /dev/fuse leaked out")
        check(P.content(live) == want, "after the isolated restore the live database differs from the archive's")
        check(P.content(live)["users"][0] == 7, "the live database has not the archive's 7 users")
        check(PASSWORD not in r.stderr + r.stdout, "the password was shown: " + r.stderr[-1000:])
    finally:
        for name in (live, src):
            A.pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
