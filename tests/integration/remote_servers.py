# SPDX-License-Identifier: MIT
"""Real servers on loopback for the remote-archive tests and
scripts/bench-remote.sh: an S3 server (s3rver, from npm, behind a gate
that checks SigV4 signatures, which s3rver does not), nginx (HTTP and
HTTPS with a self-signed certificate, a path answering 403, a slow path)
and a small range server that can cut its responses mid-body or stop.

Every server is a context manager and is also stopped at exit (atexit),
whatever the test did.  A server that cannot be installed or started is a
failure with a clear message, never a skip.

CLI (for shell scripts):
  remote_servers.py s3rver-bin        installs s3rver if needed, prints its path
  remote_servers.py serve ROOT WORK   nginx over ROOT (HTTP, HTTPS) until SIGTERM; prints
                                      'HTTP_PORT HTTPS_PORT CA_FILE ACCESS_LOG' once it listens
"""
import atexit
import ctypes
import datetime
import hashlib
import hmac
import http.server
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

S3RVER_VERSION = "3"
S3RVER_KEY = "S3RVER"  # the access key id s3rver knows (it checks the id, not a V4 signature)
NGINX = "/usr/sbin/nginx"
_running = []


class ServerError(Exception):
    pass


def _stop_all():
    for s in list(_running):
        try:
            s.stop()
        except Exception:  # at exit: stop the others whatever one of them did
            pass


atexit.register(_stop_all)


def _die_with_parent():
    """In a server's child process: SIGTERM when the test process ends,
    even by os._exit or SIGKILL, which skip atexit."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_process(proc, term):
    """Ends proc (None: nothing) with term(proc), its whole group with
    SIGKILL past 20 s."""
    if proc is None or proc.poll() is not None:
        return
    term(proc)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_port(port, proc, what, log, timeout=30):
    """Waits until 127.0.0.1:port accepts a connection; fails when proc exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerError("%s exited with %d before listening on %d: %s" % (what, proc.returncode, port, log()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServerError("%s did not listen on port %d within %d s: %s" % (what, port, timeout, log()))
        time.sleep(0.02)


# ---------------------------------------------------------------- SigV4

def sigv4_headers(method, url, body=b"", key=S3RVER_KEY, secret="S3RVER", region="us-east-1", token=None,
                  extra=None):
    """The headers of an AWS SigV4-signed S3 request (path-style URL)."""
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": u.netloc, "x-amz-date": amzdate, "x-amz-content-sha256": payload}
    if token:
        headers["x-amz-security-token"] = token
    for k, v in (extra or {}).items():
        headers[k.lower()] = v
    signed = sorted(headers)
    query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                     for k, v in sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True)))
    canonical = "\n".join([method, urllib.parse.quote(u.path or "/", safe="/-_.~"), query,
                           "".join("%s:%s\n" % (h, headers[h].strip()) for h in signed), ";".join(signed), payload])
    scope = "%s/%s/s3/aws4_request" % (day, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key, scope, ";".join(signed), sig)
    del headers["host"]
    return headers


def http_request(method, url, body=b"", headers=None, timeout=60):
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ---------------------------------------------------------------- s3rver

def npm_dir():
    """Where s3rver is installed once per version: ARCHFS_TEST_NPM_DIR, else
    /var/cache/archfs-test/npm when writable, else ~/.cache/archfs-test/npm."""
    base = os.environ.get("ARCHFS_TEST_NPM_DIR")
    if not base:
        base = "/var/cache/archfs-test/npm"
        try:
            os.makedirs(base, exist_ok=True)
            if not os.access(base, os.W_OK):
                raise OSError
        except OSError:
            base = os.path.join(os.path.expanduser("~"), ".cache", "archfs-test", "npm")
    return os.path.join(base, "s3rver-" + S3RVER_VERSION)


_install_lock = threading.Lock()


def s3rver_bin():
    """The s3rver executable, installed with npm (no stdin, no audit) into
    a throwaway directory the first time; ServerError when that fails."""
    d = npm_dir()
    exe = os.path.join(d, "node_modules", ".bin", "s3rver")
    with _install_lock:
        if os.access(exe, os.X_OK):
            return exe
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            raise ServerError("s3rver cannot be installed: no npm/node on PATH (scripts/setup.sh installs nodejs "
                              "and npm)")
        os.makedirs(os.path.dirname(d), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".s3rver-", dir=os.path.dirname(d))
        try:
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-progress", "--prefix", tmp,
                                "s3rver@" + S3RVER_VERSION], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=900)
            if r.returncode != 0 or not os.access(os.path.join(tmp, "node_modules", ".bin", "s3rver"), os.X_OK):
                tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
                raise ServerError("s3rver cannot be installed: npm install s3rver@%s exited with %d: %s" % (
                    S3RVER_VERSION, r.returncode, " | ".join(tail)))
            if os.path.exists(d):
                shutil.rmtree(d)
            os.rename(tmp, d)
        except subprocess.TimeoutExpired:
            raise ServerError("s3rver cannot be installed: npm install ran past 900 s")
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return exe


class S3Server:
    """s3rver on 127.0.0.1 with its data in a temporary directory and the
    given buckets made at start; put/delete objects with signed requests."""

    def __init__(self, work, buckets=("backups",), secret=None, token=None):
        self.dir = tempfile.mkdtemp(prefix="s3rver-", dir=work)
        self.buckets, self.proc, self.port = list(buckets), None, None
        self.secret, self.token, self.gate = secret, token, None

    def log(self):
        try:
            return open(os.path.join(self.dir, "s3rver.log"), errors="replace").read()[-2000:]
        except OSError:
            return ""

    def start(self):
        exe = s3rver_bin()
        data = os.path.join(self.dir, "data")
        os.makedirs(data, exist_ok=True)
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port = self.port if self.port and attempt == 0 else free_port()
            args = [exe, "-d", data, "-a", "127.0.0.1", "-p", str(self.port), "--silent", "--no-vhost-buckets"]
            for b in self.buckets:
                args += ["--configure-bucket", b]
            with open(os.path.join(self.dir, "s3rver.log"), "ab") as logf:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                             start_new_session=True, preexec_fn=_die_with_parent)
            _running.append(self)
            try:
                wait_port(self.port, self.proc, "s3rver", self.log)
                break
            except ServerError:
                self.stop()
                if attempt == 2:
                    raise
        if self.secret is not None:
            self.gate = SigV4Gate(self.port, {S3RVER_KEY: self.secret}, self.token).start()
        deadline = time.monotonic() + 30
        while True:  # listening is not yet answering: the buckets are made first
            st, _, _ = self.request("GET", "/" + self.buckets[0] + "?list-type=2") if self.buckets else (200, 0, 0)
            if st == 200:
                return self
            if time.monotonic() > deadline:
                raise ServerError("s3rver does not answer a bucket listing (%d): %s" % (st, self.log()))
            time.sleep(0.05)

    def stop(self):
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        end_process(self.proc, lambda p: os.killpg(p.pid, signal.SIGTERM))
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def endpoint(self):
        """Where clients go: the signature-checking gate when there is one."""
        return "http://127.0.0.1:%d" % (self.gate.port if self.gate else self.port)

    def request(self, method, path, body=b"", extra=None):
        url = self.endpoint + path
        return http_request(method, url, body, sigv4_headers(method, url, body, secret=self.secret or "S3RVER",
                                                             token=self.token, extra=extra))

    def put(self, bucket, key, src):
        """Uploads src (a path or bytes) as bucket/key; returns the new ETag."""
        body = open(src, "rb").read() if isinstance(src, str) else src
        st, hd, out = self.request("PUT", "/%s/%s" % (bucket, urllib.parse.quote(key)), body)
        if st != 200:
            raise ServerError("PUT %s/%s: %d %s" % (bucket, key, st, out[:300]))
        return hd.get("ETag")

    def delete(self, bucket, key):
        st, _, out = self.request("DELETE", "/%s/%s" % (bucket, urllib.parse.quote(key)))
        if st not in (200, 204):
            raise ServerError("DELETE %s/%s: %d %s" % (bucket, key, st, out[:300]))

    def head(self, bucket, key):
        """(status, headers) of a HEAD of bucket/key."""
        st, hd, _ = self.request("HEAD", "/%s/%s" % (bucket, urllib.parse.quote(key)))
        return st, hd


# ---------------------------------------------------------------- a SigV4-checking gate in front of s3rver

def canonical_query(query):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                    for k, v in sorted(pairs))


def check_sigv4(method, raw_path, headers, secrets, token=None):
    """None when the request's Authorization is a valid AWS SigV4 signature
    by one of secrets ({key id: secret}), else (status, S3 error code).
    token, when given, must come signed in x-amz-security-token."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return 403, "AccessDenied"
    try:
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        key, day, region, service, term = fields["Credential"].split("/")
        signed, sig = fields["SignedHeaders"].split(";"), fields["Signature"]
    except (ValueError, KeyError):
        return 400, "AuthorizationHeaderMalformed"
    if key not in secrets:
        return 403, "InvalidAccessKeyId"
    if token is not None and (headers.get("x-amz-security-token") != token or "x-amz-security-token" not in signed):
        return 403, "InvalidToken"
    if "host" not in signed or "x-amz-date" not in signed and "date" not in signed:
        return 403, "SignatureDoesNotMatch"
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        return 400, "InvalidRequest"
    path, _, query = raw_path.partition("?")
    canonical = "\n".join([method, path, canonical_query(query),
                           "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed),
                           ";".join(signed), payload])
    scope = "/".join([day, region, service, term])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secrets[key]).encode()
    for part in (day, region, service, term):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), sig):
        return 403, "SignatureDoesNotMatch"
    return None


class SigV4Gate:
    """A reverse proxy on 127.0.0.1 that lets through to s3rver only the
    requests signed (AWS SigV4) with a known secret, and with the session
    token when one is required: s3rver itself checks only the key id.
    A refused request gets the S3 error AWS would send."""

    def __init__(self, upstream_port, secrets, token=None):
        self.upstream_port, self.secrets, self.token = upstream_port, dict(secrets), token
        self.httpd, self.port, self.refused = None, None, []

    def start(self):
        import http.client
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hd = {k.lower(): v for k, v in self.headers.items()}
                bad = check_sigv4(self.command, self.path, hd, outer.secrets, outer.token)
                if bad:
                    outer.refused.append((self.command, self.path, bad[1]))
                    msg = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                           '<Message>refused by the test gate</Message></Error>' % bad[1]).encode()
                    self.send_response(bad[0])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(msg)
                    return
                up = http.client.HTTPConnection("127.0.0.1", outer.upstream_port, timeout=60)
                try:
                    up.request(self.command, self.path, body=body or None,
                               headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
                    r = up.getresponse()
                    data = r.read()
                    self.send_response(r.status)
                    for k, v in r.getheaders():
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length",
                                             "date"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", r.getheader("Content-Length") if self.command == "HEAD"
                                     and r.getheader("Content-Length") else str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    up.close()

            do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = handle_any

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        _running.append(self)
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self in _running:
            _running.remove(self)


# ---------------------------------------------------------------- nginx

NGINX_CONF = """user root root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    log_format rq '$request_method $uri $status $http_range $body_bytes_sent';
    access_log {d}/access.log rq;
    default_type application/zip;
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {root};
        location /forbidden/ {{ return 403; }}
        location /slow/ {{ alias {root}/; limit_rate {rate}; }}
    }}
}}
"""


class Nginx:
    """nginx serving root over HTTP and HTTPS (a self-signed certificate for
    127.0.0.1 and localhost, ca_file) with range requests; /forbidden/...
    answers 403, /slow/NAME serves root/NAME at limit_rate bytes a second.
    The access log counts requests: 'METHOD URI STATUS RANGE BYTES'."""

    def __init__(self, work, rate="512k", root=None):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=work)
        self.root = root or os.path.join(self.dir, "www")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.rate, self.proc = rate, None
        self.http_port = self.https_port = None
        self.ca_file = os.path.join(self.dir, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", os.path.join(self.dir, "key.pem"), "-out", self.ca_file,
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise ServerError("openssl req: " + r.stderr.strip()[-500:])

    def log(self):
        try:
            return open(os.path.join(self.dir, "error.log"), errors="replace").read()[-2000:]
        except OSError:
            return ""

    def start(self):
        """Starts nginx; on the ports of its last run when it ran before."""
        for attempt in range(3):
            if attempt or self.http_port is None:
                self.http_port, self.https_port = free_port(), free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(d=self.dir, root=self.root, http=self.http_port, https=self.https_port,
                                          rate=self.rate))
            self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)
            _running.append(self)
            try:
                wait_port(self.http_port, self.proc, "nginx", self.log)
                wait_port(self.https_port, self.proc, "nginx", self.log)
                return self
            except ServerError:
                self.stop()
                if attempt == 2:
                    raise

    def stop(self):
        end_process(self.proc, lambda p: p.terminate())  # SIGTERM: fast shutdown, open connections closed
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def publish(self, src, name, mtime=None):
        """Puts src (a path or bytes) at root/name atomically (a rename: a
        reader of the old file keeps it); its URL path is /name."""
        dst = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + ".tmp"
        if isinstance(src, str):
            shutil.copyfile(src, tmp)
            st = os.stat(src)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            open(tmp, "wb").write(src)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.rename(tmp, dst)
        return "/" + name

    def url(self, path, https=True):
        return "%s://127.0.0.1:%d%s" % ("https" if https else "http", self.https_port if https else self.http_port,
                                        path)

    def access_lines(self):
        try:
            return open(os.path.join(self.dir, "access.log")).read().splitlines()
        except OSError:
            return []


# ---------------------------------------------------------------- a range server that fails on demand

class RangeServer:
    """A plain HTTP server of one file with ETag, Last-Modified and Range,
    in a thread.  mode 'ok' serves; 'cut' sends the headers and half of each
    body, then closes the connection (a server dying mid-transfer); stop()
    closes the listening socket (connections refused), start() reopens it
    on the same port, and stop() also closes the connections kept alive.
    fail_left = N answers the next N requests 503.  requests counts the
    GETs and HEADs answered."""

    def __init__(self, path):
        self.path, self.mode, self.requests, self.port, self.httpd = path, "ok", 0, None, None
        self.fail_left = 0  # the next requests answered 503
        self.conns = set()
        self.lock = threading.Lock()

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.conns.add(self.connection)

            def finish(self):
                with outer.lock:
                    outer.conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_HEAD(self):
                self.serve(False)

            def do_GET(self):
                self.serve(True)

            def serve(self, body):
                with outer.lock:
                    outer.requests += 1
                    mode = outer.mode
                    if outer.fail_left > 0:
                        outer.fail_left -= 1
                        mode = "503"
                if mode == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    data = open(outer.path, "rb").read()
                    st = os.stat(outer.path)
                except OSError:
                    self.send_error(404)
                    return
                etag = '"%x-%x"' % (st.st_mtime_ns, len(data))
                lo, hi, status = 0, len(data) - 1, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].split(",")[0].partition("-")
                    if a == "":
                        lo = max(0, len(data) - int(b))
                    else:
                        lo, hi = int(a), min(int(b), len(data) - 1) if b else len(data) - 1
                    if lo >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", "bytes */%d" % len(data))
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                chunk = data[lo:hi + 1]
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                if status == 206:
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (lo, hi, len(data)))
                self.end_headers()
                if not body:
                    return
                if mode == "cut":
                    self.wfile.write(chunk[:len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(chunk)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", self.port or 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        _running.append(self)
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
            with self.lock:
                for c in list(self.conns):
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def url(self, name="backup.zip"):
        return "http://127.0.0.1:%d/%s" % (self.port, name)


def delay_proxy(upstream_port, delay_ms):
    """A TCP proxy on loopback to upstream_port that holds everything a
    client sends for delay_ms before passing it on: each request waits that
    long for its first byte, as over a network with that round trip (nginx's
    limit_rate cannot stand for one: it lets the first second's worth of a
    response go at once).  Prints its port, then runs until SIGTERM."""
    delay = delay_ms / 1000.0
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def pipe(src, dst, wait):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if wait:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def accept():
        while True:
            c, _ = lsock.accept()
            u = socket.create_connection(("127.0.0.1", upstream_port))
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=pipe, args=(u, c, False), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(lsock.getsockname()[1], flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: done.set())
    done.wait()


def serve(root, work):
    """nginx over root until SIGTERM or SIGINT: prints one line, 'HTTP_PORT
    HTTPS_PORT CA_FILE ACCESS_LOG', once it listens."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: done.set())
    with Nginx(work, root=os.path.abspath(root)) as n:
        print(n.http_port, n.https_port, n.ca_file, os.path.join(n.dir, "access.log"), flush=True)
        while not done.wait(1):
            if n.proc.poll() is not None:
                sys.exit("remote_servers: nginx exited with %d: %s" % (n.proc.returncode, n.log()))


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "s3rver-bin":
        try:
            print(s3rver_bin())
        except ServerError as e:
            sys.exit("remote_servers: %s" % e)
    elif len(sys.argv) == 4 and sys.argv[1] == "delay-proxy":
        delay_proxy(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "serve":
        try:
            serve(sys.argv[2], sys.argv[3])
        except ServerError as e:
            sys.exit("remote_servers: %s" % e)
    else:
        sys.exit("usage: remote_servers.py s3rver-bin | serve ROOT WORK | delay-proxy PORT MS")


if __name__ == "__main__":
    main()
