"""The command-line verify and restore with --json and their exit codes,
one per class of failure (docs/restore.md, "Machine-readable output and
exit codes"): every case is a real run whose exit status and JSON lines are
checked: each line one valid UTF-8 JSON object, status events in the
pipeline's order, log lines, exactly one summary, last, whose exit_code is
the process's, and nothing on stderr."""
import json
import os
import signal
import subprocess
import time
import zipfile

import harness as H
from harness import Mount, check, fixture
from restore_tests import Live, control, corrupt_db_archive, gates_env, status, wait_final
import pg_tests

# The order of the phases a run goes through (migrate may come before or after the database).
RANK = {"verifying": 0, "snapshot": 1, "database": 2, "uploads": 3, "done": 9, "failed": 9, "cancelled": 9}
EXIT = {"done": 0, "failed": 1, "usage": 2, "archive": 3, "target": 4, "refused": 5, "cancelled": 6}


def cli():
    return os.path.join(os.path.dirname(H.ARCHFS), "archfs-cli")


def parse(rc, out, err, secret=None):
    """Checks a --json run's output; returns (summary, events)."""
    if secret:
        check(secret.encode() not in out and secret.encode() not in err, "the password is in the output")
    check(err == b"", "--json wrote to stderr: %r" % err[-600:])
    text = out.decode("utf-8")  # strict: a byte that is not UTF-8 fails the test
    check(text.endswith("\n"), "the output does not end with a newline: %r" % text[-200:])
    events = []
    for line in text[:-1].split("\n"):
        try:
            e = json.loads(line)
        except ValueError:
            raise H.Failure("not a JSON line: %r" % line)
        check(isinstance(e, dict) and e.get("message_type") in ("status", "log", "summary"), "odd event: %r" % line)
        events.append(e)
    kinds = [e["message_type"] for e in events]
    check(kinds.count("summary") == 1 and kinds[-1] == "summary", "not exactly one summary, last: %s" % kinds)
    s = events[-1]
    check(s["exit_code"] == rc, "summary exit_code %r, process exit status %d" % (s["exit_code"], rc))
    check(s["result"] == {0: "done", 2: "refused", 5: "refused", 6: "cancelled"}.get(rc, "failed"),
          "exit %d with result %r" % (rc, s["result"]))
    check((s["failure"] is None) == (rc == 0) and (rc == 0 or EXIT[s["failure"]] == rc),
          "exit %d with failure %r" % (rc, s["failure"]))
    check((s["error"] is None) == (rc == 0), "exit %d with error %r" % (rc, s["error"]))
    check(isinstance(s["elapsed_seconds"], (int, float)) and s["elapsed_seconds"] >= 0, "elapsed: %r" % s)
    for e in events:
        if e["message_type"] == "log":
            check(isinstance(e["line"], str) and "\n" not in e["line"], "log event: %r" % e)
    st = [e for e in events if e["message_type"] == "status"]
    pcts = [e["percent"] for e in st]
    check(pcts == sorted(pcts), "percent goes backwards: %s" % pcts)
    ranks = [RANK[e["state"]] for e in st if e["state"] != "migrate"]
    check(ranks == sorted(ranks), "states out of order: %s" % [e["state"] for e in st])
    if st:
        check(st[0]["state"] == "verifying", "the first status is %r" % st[0]["state"])
        final = {"done": "done", "cancelled": "cancelled"}.get(s["result"], "failed")
        check(st[-1]["state"] == final, "last status %r, result %r" % (st[-1]["state"], s["result"]))
        check((st[-1]["percent"] == 100) == (final == "done"), "last status: %r" % st[-1])
    return s, events


def run_json(args, use_cli=False, env=None, secret=None, timeout=180):
    r = subprocess.run([cli() if use_cli else H.ARCHFS] + args, capture_output=True, timeout=timeout, env=env)
    s, events = parse(r.returncode, r.stdout, r.stderr, secret)
    return r.returncode, s, events


def logs(events):
    return [e["line"] for e in events if e["message_type"] == "log"]


def states(events):
    return [e["state"] for e in events if e["message_type"] == "status"]


def no_target_env():
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "UPLOAD_FOLDER")}


def text_run(args, env=None):
    return subprocess.run([H.ARCHFS] + args, capture_output=True, text=True, timeout=180, env=env)


def expected_merge(archive, root):
    """What merging archive's uploads/ into the live tree root replaces (live
    files), creates (new files and directories) and writes (bytes)."""
    files, dirs, size = set(), set(), 0
    for i in zipfile.ZipFile(archive).infolist():
        rel = i.filename[len("uploads/"):].rstrip("/") if i.filename.startswith("uploads/") else ""
        if not rel:
            continue
        parts = rel.split("/")
        dirs.update("/".join(parts[:k]) for k in range(1, len(parts)))
        if i.is_dir():
            dirs.add(rel)
        else:
            files.add(rel)
            size += i.file_size
    there = [p for p in files | dirs if os.path.lexists(os.path.join(root, p))]
    return {"replaced": len(files.intersection(there)), "created": len(files | dirs) - len(there), "bytes": size}


def t_json_done():
    archive, src = fixture("app")
    rc, s, ev = run_json(["verify", "--json", archive], env=no_target_env())
    check(rc == 0 and s["command"] == "verify" and s["archive"] == os.path.realpath(archive),
          "verify: %d %r" % (rc, s))
    check(any(line.startswith("verified: ") for line in logs(ev)), "verify: no 'verified' log line: %s" % logs(ev))
    check(s["manifest"]["alembic_revision"] == "a1b2c3d4e5f6", "verify: the summary's manifest: %r" % s["manifest"])
    check(s["uploads_merge"] is None, "verify without a target: uploads_merge %r" % s["uploads_merge"])
    live = Live()
    want = dict(expected_merge(archive, live.uploads), merged=True)
    rc, s, ev = run_json(["restore", "--json", archive, *live.opts()], use_cli=True)
    check(rc == 0, "restore: %d %r" % (rc, s))
    check(s["uploads_merge"] == want and want["replaced"] and want["created"],
          "restore: uploads_merge %r, expected %r" % (s["uploads_merge"], want))
    seen = states(ev)
    check(all(x in seen for x in ("verifying", "snapshot", "database", "uploads", "done")), "states: %s" % seen)
    check(s["snapshot"] and os.path.exists(s["snapshot"]) and s["target"]["type"] == "sqlite" and
          s["target"]["uploads"] == live.uploads and s["started_at"] and s["finished_at"], "summary: %r" % s)
    check("restore done" in logs(ev), "restore: no 'restore done' log line: %s" % logs(ev)[-5:])
    # a name that is not UTF-8 (any bytes are a file name): the lines stay valid UTF-8
    odd = os.fsencode(live.dir) + b"/backup-\xff\xfe.zip"
    with open(archive, "rb") as f, open(odd, "wb") as g:
        g.write(f.read())
    rc, s, ev = run_json(["verify", "--json", odd])
    check(rc == 0 and s["archive"].endswith("/backup-\ufffd\ufffd.zip"), "a name that is not UTF-8: %d %r" % (
        rc, s["archive"]))
    # --json applies to verify and restore only
    r = text_run(["--json", archive, os.path.join(live.dir, "mnt")])
    check(r.returncode == 2 and "--json" in r.stderr and r.stdout == "", "a mount with --json: %d %r" % (
        r.returncode, r.stderr))


def t_json_usage_is_exit_2():
    archive, _ = fixture("app")
    live = Live()
    for args, why in ((["verify", "--json", archive, "--bogus"], "--bogus"),
                      (["restore", "--json", archive, *live.opts("--lock-wait", "soon")], "--lock-wait"),
                      (["verify", "--json", archive, "--database", "ftp://u:Secret-1@h/db"], "unknown scheme"),
                      (["restore", "--json", archive, "-f"], "only applies to a mount"),
                      (["restore", "--json", archive], "no target")):
        for use_cli in (False, True):
            rc, s, ev = run_json(args, use_cli=use_cli, env=no_target_env(), secret="Secret-1")
            check(rc == 2 and why in s["error"] and s["failure"] == "usage" and not states(ev),
                  "%s: %d %r" % (args, rc, s))
    r = text_run(["restore", archive, "--lock-wait", "soon"])
    check(r.returncode == 2 and len(r.stderr.splitlines()) == 1, "text mode: %d %r" % (r.returncode, r.stderr))


def t_json_bad_archive_is_exit_3():
    live = Live()
    before = live.state()
    notzip, _ = fixture("notzip")
    dotdot, _ = fixture("dotdot")
    badcrc, _ = fixture("badcrc")
    nomanifest = os.path.join(live.dir, "bad-manifest.zip")
    with zipfile.ZipFile(nomanifest, "w") as z:
        z.writestr("manifest.json", "{not json")
        z.writestr("db.sqlite", b"x")
    cases = ((os.path.join(live.dir, "missing.zip"), "No such file"), (notzip, ""), (dotdot, ".."),
             (badcrc, "damaged.txt"), (corrupt_db_archive(), "integrity_check"), (nomanifest, "manifest"))
    for archive, why in cases:
        for command in ("verify", "restore"):
            rc, s, ev = run_json([command, "--json", archive, *live.opts()])
            check(rc == 3 and s["failure"] == "archive" and why in s["error"], "%s %s: %d %r" % (
                command, archive, rc, s))
    check(live.state() == before and live.snapshots() == [], "a bad archive changed the target")
    r = text_run(["verify", badcrc])
    check(r.returncode == 3 and "damaged.txt" in r.stderr, "text mode: %d %s" % (r.returncode, r.stderr[-300:]))


def t_json_bad_target_is_exit_4():
    archive, _ = fixture("app")
    live = Live()
    before = live.state()
    missing = os.path.join(live.dir, "missing")
    os.mkdir(os.path.join(live.dir, "adir.db"))
    cases = ((["--database", "sqlite:///%s/app.db" % missing], missing),       # its directory: at the options
             (["--uploads", missing], missing),
             (["--database", "sqlite:///%s/new.db" % live.dir], "does not exist"),  # at verify
             (["--database", "sqlite:///%s/adir.db" % live.dir], "not a regular file"))
    for opts, why in cases:
        for command in ("verify", "restore"):
            rc, s, ev = run_json([command, "--json", archive, *opts])
            check(rc == 4 and s["failure"] == "target" and why in s["error"], "%s %s: %d %r" % (
                command, opts, rc, s))
    check(live.state() == before, "a bad target changed the live one")
    r = text_run(["restore", archive, "--database", "sqlite:///%s/new.db" % live.dir])
    check(r.returncode == 4 and "does not exist" in r.stderr, "text mode: %d %s" % (r.returncode, r.stderr[-300:]))


def wait_reached(gates, gate, proc, timeout=120):
    path = os.path.join(gates, gate + ".reached")
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise H.Failure("the run ended (%d) before the gate %s: %r" % (proc.returncode, gate, proc.communicate()))
        check(time.time() < deadline, "gate %s not reached" % gate)
        time.sleep(0.01)


def open_gate(gates, gate):
    open(os.path.join(gates, gate + ".go"), "w").close()


def t_json_refused_is_exit_5():
    archive, _ = fixture("app")
    live = Live()
    gates, genv = gates_env("snapshot")
    first = subprocess.Popen([H.ARCHFS, "restore", "--json", archive, *live.opts()], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(os.environ, **genv))
    try:
        wait_reached(gates, "snapshot", first)
        rc, s, ev = run_json(["restore", "--json", archive, *live.opts()], use_cli=True)
        check(rc == 5 and s["failure"] == "refused" and "another restore" in s["error"], "second: %d %r" % (rc, s))
        r = text_run(["restore", archive, *live.opts()])
        check(r.returncode == 5 and "another restore" in r.stderr, "text mode: %d %s" % (r.returncode, r.stderr))
    finally:
        open_gate(gates, "snapshot")
        out, err = first.communicate(timeout=180)
    s, ev = parse(first.returncode, out, err)
    check(first.returncode == 0, "the first restore: %d %r" % (first.returncode, s))


def t_json_cancelled_is_exit_6():
    """SIGTERM before the commit: the restore is cancelled, nothing changes,
    exit 6.  The gate holds the run after the snapshot until the cancel
    has been taken (its log line), so the signal lands before the commit."""
    archive, _ = fixture("app")
    live = Live()
    before = live.state()
    gates, genv = gates_env("snapshot")
    p = subprocess.Popen([H.ARCHFS, "restore", "--json", archive, *live.opts()], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, **genv))
    seen = b""
    try:
        wait_reached(gates, "snapshot", p)
        p.send_signal(signal.SIGTERM)
        while True:
            line = p.stdout.readline()
            check(line, "the output ended before the cancel was taken: %r" % seen[-600:])
            seen += line
            if json.loads(line).get("line") == "cancel requested":
                break
    finally:
        open_gate(gates, "snapshot")
        out, err = p.communicate(timeout=180)
    s, ev = parse(p.returncode, seen + out, err)
    check(p.returncode == 6 and s["failure"] == "cancelled" and "nothing was changed" in s["error"],
          "SIGTERM: %d %r" % (p.returncode, s))
    check(live.state() == before and live.snapshots() == [], "a cancelled restore changed the target")


def t_json_failed_is_exit_1():
    """A --migrate command that fails: the restore fails, nothing changes, exit 1."""
    archive, _ = fixture("app")
    live = Live()
    before = live.state()
    rc, s, ev = run_json(["restore", "--json", archive, *live.opts("--migrate", "echo no-schema-here; exit 3")])
    check(rc == 1 and s["failure"] == "failed" and "status 3" in s["error"], "failing migrate: %d %r" % (rc, s))
    check(any("no-schema-here" in line for line in logs(ev)), "the command's output is not logged: %s" % logs(ev))
    check(live.state() == before, "a failed restore changed the target")
    r = text_run(["restore", archive, *live.opts("--migrate", "exit 3")])
    check(r.returncode == 1 and "status 3" in r.stderr, "text mode: %d %s" % (r.returncode, r.stderr[-300:]))


def t_json_status_failure_field():
    """.status names the class of a failure for the mount's users too."""
    badcrc, _ = fixture("badcrc")
    live = Live()
    with Mount(badcrc, *live.opts()) as m:
        check(status(m)["failure"] is None, "failure before any run: %r" % status(m)["failure"])
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m)
        check(s["state"] == "failed" and s["failure"] == "archive", ".status after a bad CRC: %r" % s)
    archive, _ = fixture("app")
    with Mount(archive, "--database", "sqlite:///%s/none.db" % live.dir) as m:
        check(control(m, "verify") == 0, "verify refused")
        s = wait_final(m)
        check(s["state"] == "failed" and s["failure"] == "target", ".status of a missing database: %r" % s)
    with Mount(archive, *live.opts()) as m:
        check(control(m, "verify") == 0, "verify refused")
        s = wait_final(m)
        check(s["state"] == "done" and s["failure"] is None, ".status of a sound verify: %r" % s)


def t_pg_json_exit_codes():
    """PostgreSQL: a wrong password and an unreachable server are exit 4 and
    the password is in no byte of the output; with the right one, exit 0; a
    restore while another holds the advisory lock is exit 5."""
    archive, _ = pg_tests.pg_archive()
    live = pg_tests.new_db(3, 10, "old")
    secret = "Pw-json-wrong-77"
    rc, s, ev = run_json(["verify", "--json", archive, "--database", pg_tests.url(live, "app_pw", secret)],
                         secret=secret)
    check(rc == 4 and s["failure"] == "target" and "password authentication failed" in s["error"],
          "wrong password: %d %r" % (rc, s))
    host, port = pg_tests.server()
    rc, s, ev = run_json(["verify", "--json", archive, "--database",
                          "postgresql://postgres:%s@/%s?host=%s&port=1" % (secret, live, host)], secret=secret)
    check(rc == 4 and s["failure"] == "target" and "cannot connect" in s["error"], "unreachable: %d %r" % (rc, s))
    good = "p@ss w/rd%"
    r = subprocess.run([cli(), "verify", "--json", archive, "--database", pg_tests.url(live, "app_pw", good)],
                       capture_output=True, timeout=180)
    check(b"w%2Frd" not in r.stdout + r.stderr, "the encoded password is in the output")
    s, ev = parse(r.returncode, r.stdout, r.stderr, secret="w/rd")
    rc = r.returncode
    check(rc == 0 and s["target"]["type"] == "postgresql" and "app_pw" in s["target"]["url"],
          "right password: %d %r" % (rc, s))
    holder = pg_tests.connect(live)
    holder.cursor().execute("SELECT pg_advisory_lock(%s, %s)", pg_tests.LOCK_KEY)
    before = pg_tests.content(live)
    try:
        rc, s, ev = run_json(["restore", "--json", archive, "--database", pg_tests.url(live), "--no-snapshot"])
        check(rc == 5 and s["failure"] == "refused" and "advisory lock" in s["error"], "advisory lock held: %d %r" % (
            rc, s))
        check(pg_tests.content(live) == before, "a refused restore changed the database")
    finally:
        holder.close()
