"""mcharness — shared helpers for meshcdn end-to-end tests (stdlib only, Python >= 3.9).

The tests run the real binaries on ephemeral loopback ports. Typical use::

    import unittest
    import mcharness as h

    class OriginTest(unittest.TestCase):
        def test_get(self):
            tmp = h.tempdir(self)                       # removed after the test
            h.write_keys(f"{tmp}/keys", [("AK", "SECRET")])
            with h.Daemon("meshcdn-origin", ["--root", tmp, "--keys", f"{tmp}/keys",
                                             "--listen", "127.0.0.1:0",
                                             "--control", "127.0.0.1:0"]) as d:
                host, port = d.addr["s3"]
                hdrs = h.sign("GET", f"http://{host}:{port}/b/k", {}, "AK", "SECRET")
                status, headers, body, complete = h.http("GET", host, port, "/b/k", hdrs)
            # leaving the block stops the daemon and fails the test on a non-zero
            # exit status or any sanitizer report in its log

Contents
    BUILD                      build directory ($MESHCDN_BUILD, set by ctest)
    binary(name)               path of a built binary
    tempdir(test=None, prefix) a temporary directory, removed at test cleanup
    Daemon(...)                start / wait for readiness / stop a daemon
    run(name, args, ...)       run a binary to completion (--help, start-up errors)
    sanitizer_reports(text)    ASan/UBSan/LSan report lines found in a log
    write_keys(path, pairs)    a key file with mode 0600
    sign(...)                  AWS SigV4 (header form), written from the spec
    http(...)                  one HTTP/1.1 exchange on a raw socket
    metrics(host, port)        a Prometheus /metrics page as {sample: value}

Environment
    MESHCDN_BUILD     build directory (default: ../../build from this file)
    MESHCDN_TMP       parent for temporary directories (default: the system's)
    MESHCDN_KEEP_TMP  set to 1 to keep temporary directories for post-mortems
"""

import datetime
import hashlib
import hmac
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

__all__ = [
    "BUILD", "binary", "tempdir", "Daemon", "DaemonError", "run", "sanitizer_reports",
    "write_keys", "sign", "http", "metrics",
]

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("MESHCDN_BUILD") or os.path.normpath(os.path.join(HERE, "..", "..", "build"))

# Sanitizer settings used when the caller's environment has none (ctest sets them).
_SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

_SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer")

_LISTENING = re.compile(r"msg=listening listener=(\S+) addr=(\S+)")


class DaemonError(AssertionError):
    """A daemon failed to start, exited badly, or logged a sanitizer report."""


# ---- files and binaries ------------------------------------------------------

def binary(name):
    """Absolute path of the built binary `name`; raises DaemonError if it is missing."""
    path = name if os.path.isabs(name) else os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        raise DaemonError(f"{path}: not built (set MESHCDN_BUILD to the build directory)")
    return path


def tempdir(test=None, prefix="meshcdn-"):
    """Create a temporary directory. With a unittest.TestCase (or anything with
    addCleanup), it is removed when the test finishes (unless MESHCDN_KEEP_TMP=1);
    without one the caller removes it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("MESHCDN_TMP"))
    if test is not None and os.environ.get("MESHCDN_KEEP_TMP") != "1":
        test.addCleanup(shutil.rmtree, path, True)
    return path


def write_keys(path, pairs, mode=0o600):
    """Write a key file: one "ACCESS_KEY_ID SECRET" line per (access, secret) pair,
    created with `mode` (0600 by default; pass 0o640 to test the refusal)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# written by mcharness\n")
        for access, secret in pairs:
            f.write(f"{access} {secret}\n")
    os.chmod(path, mode)
    return path


def sanitizer_reports(text):
    """The lines of `text` that start a sanitizer report (empty list when clean)."""
    return [line for line in text.splitlines() if any(p in line for p in _SANITIZER_PATTERNS)]


def _env(extra):
    env = dict(os.environ)
    for k, v in _SANITIZER_ENV.items():
        env.setdefault(k, v)
    env.update(extra or {})
    return env


def run(name, args, timeout=30.0, env=None, check_sanitizers=True):
    """Run a binary to completion; returns subprocess.CompletedProcess with text
    stdout/stderr. Raises DaemonError on a sanitizer report (unless told not to)."""
    p = subprocess.run([binary(name)] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=_env(env), errors="replace")
    if check_sanitizers:
        found = sanitizer_reports(p.stdout + p.stderr)
        if found:
            raise DaemonError(f"{name}: sanitizer report:\n{p.stderr[-4000:]}")
    return p


# ---- daemons -----------------------------------------------------------------

def _parse_addr(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    return host, int(port)


class Daemon:
    """A binary started in the background, ready once it has logged
    `msg=listening listener=NAME addr=HOST:PORT` for every name in `listeners`.

    Daemon(name, args, listeners=("s3", "control"), env=None, timeout=10.0,
           expect_exit=0, logdir=None, start=True)

    name        binary name in BUILD (or an absolute path)
    args        argument list; pass 127.0.0.1:0 for ports and read .addr
    listeners   listener names to wait for
    env         extra environment variables
    expect_exit exit status stop() requires (0: a clean shutdown)
    logdir      where daemon.log goes (default: a fresh temporary directory)

    Attributes: .addr {name: (host, port)}, .proc (subprocess.Popen), .log_path.
    Methods: start(), stop(), kill9(), log(), wait_log(regex), url(listener).
    As a context manager it starts on entry (if not yet started) and stops on exit.
    """

    def __init__(self, name, args, listeners=("s3", "control"), env=None, timeout=10.0,
                 expect_exit=0, logdir=None, start=True):
        self.name = name
        self.args = list(args)
        if os.path.basename(name) == "meshcdn-edge" and not any("mesh_validation" in a for a in self.args):
            # Fixtures serve placeholder bytes under .glb/.gltf names, which
            # the edge's glTF validation (default: pass, so never stored)
            # would keep out of the store; tests of the validation itself
            # (test_mesh3d.py) say --cache.mesh_validation explicitly.
            self.args += ["--cache.mesh_validation", "off"]
        self.listeners = tuple(listeners)
        self.env = env
        self.timeout = timeout
        self.expect_exit = expect_exit
        self._own_logdir = logdir is None
        self.logdir = logdir or tempfile.mkdtemp(prefix="meshcdn-log-",
                                                 dir=os.environ.get("MESHCDN_TMP"))
        self.log_path = os.path.join(self.logdir, f"{os.path.basename(name)}.log")
        self.addr = {}
        self.proc = None
        self._logf = None
        self._killed = False
        if start:
            self.start()

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return f"Daemon({self.name!r}, pid={self.proc.pid if self.proc else None}, addr={self.addr})"

    def log(self):
        """The daemon's combined stdout+stderr so far."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _fail(self, why):
        raise DaemonError(f"{self.name}: {why}\n--- {self.log_path} (tail) ---\n{self.log()[-4000:]}")

    def start(self):
        """Start the process and wait (self.timeout) until every listener is up."""
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary(self.name)] + self.args, stdout=self._logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=_env(self.env))
        deadline = time.monotonic() + self.timeout
        while True:
            for m in _LISTENING.finditer(self.log()):
                self.addr[m.group(1)] = _parse_addr(m.group(2))
            if all(n in self.addr for n in self.listeners):
                return self
            if self.proc.poll() is not None:
                self._close_log()
                self._fail(f"exited with status {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                self.kill9()
                self._fail(f"not listening on {self.listeners} after {self.timeout} s")
            time.sleep(0.02)

    def url(self, listener="s3"):
        host, port = self.addr[listener]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def wait_log(self, regex, timeout=10.0):
        """Wait until the log matches regex; returns the re.Match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(regex, self.log())
            if m:
                return m
            time.sleep(0.02)
        self._fail(f"log never matched {regex!r}")

    def _close_log(self):
        if self._logf:
            self._logf.close()
            self._logf = None

    def _check_log(self):
        found = sanitizer_reports(self.log())
        if found:
            self._fail("sanitizer report: " + found[0])

    def stop(self, timeout=10.0, sig=signal.SIGINT):
        """`sig` (SIGINT: an immediate clean stop; SIGTERM makes meshcdn-edge
        drain first, up to its drain_timeout), wait `timeout` s (then SIGKILL and fail); require expect_exit
        (not checked after a deliberate kill9()) and a log without sanitizer
        reports. Returns the exit status. Idempotent, so addCleanup(d.stop) is safe."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                self._fail(f"did not exit within {timeout} s of {signal.Signals(sig).name}")
        self._close_log()
        self._check_log()
        if (not self._killed and self.expect_exit is not None
                and self.proc.returncode != self.expect_exit):
            self._fail(f"exit status {self.proc.returncode}, expected {self.expect_exit}")
        self._cleanup_logdir()
        return self.proc.returncode

    def kill9(self):
        """SIGKILL without ceremony (a crash); returns the exit status. The log is
        still scanned for sanitizer reports written before the kill."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
            self._killed = True
        self._close_log()
        self._check_log()
        return self.proc.returncode

    def _cleanup_logdir(self):
        if self._own_logdir and os.environ.get("MESHCDN_KEEP_TMP") != "1":
            shutil.rmtree(self.logdir, True)


# ---- SigV4 -------------------------------------------------------------------

_UNRESERVED = "-_.~"


def _uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe=_UNRESERVED + ("/" if keep_slash else ""))


def _canonical_query(query):
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(name), False),
                      _uri_encode(urllib.parse.unquote(value), False)))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, url, headers, access_key, secret, region="us-east-1", service="s3",
         amz_date=None, payload_hash="UNSIGNED-PAYLOAD", body=None):
    """Sign a request with AWS Signature Version 4 (header form).

    url is the full URL as it will be sent ("http://127.0.0.1:9000/b/k?x=1"); its
    path is used exactly as written (S3 style: decoded and re-encoded once, no
    dot-segment removal). headers (dict) are all signed. amz_date is a datetime
    (UTC) or "YYYYMMDDTHHMMSSZ" (default: now). payload_hash None means the
    SHA-256 of body. Returns a new dict: the given headers plus Host,
    X-Amz-Date, X-Amz-Content-Sha256 and Authorization.
    """
    u = urllib.parse.urlsplit(url)
    if amz_date is None:
        amz_date = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(amz_date, datetime.datetime):
        amz_date = amz_date.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if payload_hash is None:
        payload_hash = hashlib.sha256(body or b"").hexdigest()
    out = dict(headers or {})
    lower = {k.lower() for k in out}
    if "host" not in lower:
        out["Host"] = u.netloc
    if "x-amz-date" not in lower:
        out["X-Amz-Date"] = amz_date
    if "x-amz-content-sha256" not in lower:
        out["X-Amz-Content-Sha256"] = payload_hash

    canon = {}
    for k, v in out.items():
        canon.setdefault(k.lower(), []).append(" ".join(str(v).split()))
    names = sorted(canon)
    signed = ";".join(names)
    path = u.path or "/"
    if service == "s3":
        cpath = _uri_encode(urllib.parse.unquote(path), True)
    else:
        cpath = _uri_encode(_normalize(path), True)   # the wire path, encoded again
    creq = "\n".join([method, cpath, _canonical_query(u.query),
                      "".join(f"{n}:{','.join(canon[n])}\n" for n in names), signed,
                      payload_hash])
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed}, Signature={sig}")
    return out


def _normalize(path):
    """Dot-segment removal and slash collapsing (non-S3 services)."""
    segs = []
    for s in path.split("/"):
        if s in ("", "."):
            continue
        if s == "..":
            if segs:
                segs.pop()
            continue
        segs.append(s)
    norm = "/" + "/".join(segs)
    if path.endswith("/") and norm != "/":
        norm += "/"
    return norm


# ---- HTTP --------------------------------------------------------------------

def _read_headers(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers ended")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, rest


def _read_to_eof(sock, buf):
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return buf
        buf += chunk


def _read_stray(sock, buf, wait=0.2):
    sock.settimeout(wait)
    try:
        return _read_to_eof(sock, buf)
    except (socket.timeout, ConnectionError):
        return buf


def _read_length(sock, buf, length):
    while len(buf) < length:
        chunk = sock.recv(min(1 << 20, length - len(buf)))
        if not chunk:
            return buf, False
        buf += chunk
    return buf[:length], True


def _read_chunked(sock, buf):
    buf = bytearray(_read_to_eof(sock, bytes(buf)))
    body, pos = bytearray(), 0
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return bytes(body), False
        size = int(buf[pos:end].split(b";")[0] or b"0", 16)
        pos = end + 2
        if size == 0:
            return bytes(body), True
        if pos + size > len(buf):
            body += buf[pos:]
            return bytes(body), False
        body += buf[pos:pos + size]
        pos += size + 2


def http(method, host, port, path, headers=None, body=None, timeout=10.0):
    """One HTTP/1.1 request on a fresh connection (Connection: close).

    path is sent exactly as given (raw "/../" and odd escapes reach the server
    untouched). Returns (status, headers, body, complete): headers maps lower-case
    names to lists of values; complete is False when the connection closed before
    Content-Length bytes (or the last chunk) arrived — an aborted transfer.
    """
    headers = dict(headers or {})
    lower = {k.lower() for k in headers}
    if "host" not in lower:
        headers["Host"] = f"{host}:{port}"
    headers.setdefault("Connection", "close")
    if body is not None and "content-length" not in lower:
        headers["Content-Length"] = str(len(body))
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req.encode("utf-8", "surrogateescape") + b"\r\n" + (body or b""))
        status, rh, rest = _read_headers(s, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            # No body may follow; whatever does arrive before the close is
            # returned so a test can see a server that sends one anyway.
            return status, rh, _read_stray(s, rest), True
        return (status, rh) + _read_body(s, rh, rest)


def _read_body(sock, rh, rest):
    if "chunked" in ",".join(rh.get("transfer-encoding", [])).lower():
        return _read_chunked(sock, rest)
    if "content-length" in rh:
        return _read_length(sock, rest, int(rh["content-length"][0]))
    return _read_to_eof(sock, rest), True


def read_response(sock):
    """Read one whole Content-Length response to a GET from a keep-alive socket
    (head and body may arrive in separate reads). Returns (status, headers,
    body, complete) like http()."""
    status, rh, rest = _read_headers(sock, b"")
    if status in (204, 304) or 100 <= status < 200:
        return status, rh, rest, True
    return (status, rh) + _read_body(sock, rh, rest)


def count_until_close(sock):
    """Bytes the peer still sends before it closes (or resets) sock."""
    got = 0
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return got
            got += len(chunk)
    except ConnectionResetError:
        return got


def metrics(host, port, path="/metrics"):
    """Fetch a Prometheus text page: {'name{labels}': value} for every sample line."""
    status, _, body, _ = http("GET", host, port, path)
    if status != 200:
        raise AssertionError(f"GET {path}: status {status}")
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        out[sample] = float(value)
    return out
