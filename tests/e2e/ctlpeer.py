"""ctlpeer — a stand-in control API / edge admin /purge for meshcdnctl tests (stdlib;
botocore used as a second signature check when installed).

It answers the way /work spec "meshcdn purge / fleet invalidation protocol" says
(POST/GET /invalidations, GET /invalidations/ID, GET /edges; POST /purge when
role="edge"), and VERIFIES the SigV4 signature of every request: service
"meshcdn", normalize_path = 1, only the headers named in SignedHeaders, payload
hash = x-amz-content-sha256 when sent, else SHA-256 of the body. The signature is
recomputed from the spec (mcharness's encoders) and, when botocore is importable,
also by botocore's SigV4Auth; both must agree with the client's.

    p = CtlPeer(keys={"AKOPS": "s3cret"}, edges=[Edge("edge-a", delay=0.2),
                                                  Edge("edge-b", delay=None)])
    p.url                # http://127.0.0.1:PORT
    p.requests           # [Seen(method, path, query, headers, body, status, key, t)]
    p.fail_next.append((503, "Unavailable", "log is read-only"))   # scripted errors
    p.stop()

Edges are simulated: an edge applies an invalidation `delay` seconds after it
was created (delay None: never, it stays pending); a `silent` edge is reported
unreachable and never applies. An invalidation is Completed when no edge is
pending. role="edge": only POST /purge, over `objects` {path: [surrogate keys]}
(matching objects are removed, or kept when soft).
"""

import datetime
import hashlib
import hmac
import http.server
import json
import re
import socketserver
import threading
import time
import urllib.parse
from collections import namedtuple

import mcharness as h

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:  # the spec-written check alone
    SigV4Auth = None

Seen = namedtuple("Seen", "method path query headers body status key t")  # t: arrival, monotonic

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                   r" ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$")
_FIELDS = {"paths", "surrogate_keys", "all", "soft"}


class Edge:
    def __init__(self, node, region="us-east-1", delay=0.0, silent=False):
        self.node, self.region, self.delay, self.silent = node, region, delay, silent


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signature(secret, region, service, amz_date, creq):
    day = amz_date[:8]
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{day}/{region}/{service}/aws4_request",
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def _botocore_signature(ak, secret, region, method, url, signed, amz_date, body, payload):
    hdrs = dict(signed)
    if payload is not None:
        hdrs["X-Amz-Content-SHA256"] = payload
    req = AWSRequest(method=method, url=url, data=body or b"", headers=hdrs)
    req.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(ak, secret), "meshcdn", region)
    creq = auth.canonical_request(req)
    return auth.signature(auth.string_to_sign(req, creq), req)


def verify(method, raw_path, query, headers, body, keys, region, service="meshcdn",
           max_skew_s=900, url_base="http://x"):
    """Check a request's SigV4 header signature; returns the access key or raises
    ApiError with the spec's status and code."""
    auth = headers.get("authorization")
    if not auth:
        raise ApiError(401, "MissingAuthentication", "the request is not signed")
    m = _AUTH.match(auth)
    if not m:
        raise ApiError(403, "SignatureDoesNotMatch", f"malformed Authorization: {auth[:80]}")
    ak, day, reg, svc, signed_names, sig = m.groups()
    if ak not in keys:
        raise ApiError(403, "InvalidAccessKeyId", f"unknown access key {ak}")
    if reg != region or svc != service:
        raise ApiError(403, "SignatureDoesNotMatch",
                       f"credential scope {reg}/{svc}, expected {region}/{service}")
    names = signed_names.split(";")
    if "host" not in names or "x-amz-date" not in names:
        raise ApiError(403, "SignatureDoesNotMatch", "host and x-amz-date must be signed")
    amz_date = headers.get("x-amz-date", "")
    if amz_date[:8] != day:
        raise ApiError(403, "SignatureDoesNotMatch", "x-amz-date disagrees with the scope")
    t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    if abs(t - time.time()) > max_skew_s:
        raise ApiError(403, "RequestTimeTooSkewed", "x-amz-date too far from now")
    payload = headers.get("x-amz-content-sha256")
    body_hash = hashlib.sha256(body).hexdigest()
    if payload is not None and payload != body_hash:
        raise ApiError(403, "SignatureDoesNotMatch", "x-amz-content-sha256 is not the body's")
    canon = "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names)
    cpath = h._uri_encode(h._normalize(raw_path), True)
    creq = "\n".join([method, cpath, h._canonical_query(query), canon, signed_names,
                      payload or body_hash])
    want = _signature(keys[ak], region, service, amz_date, creq)
    if SigV4Auth is not None:
        url = url_base + raw_path + ("?" + query if query else "")
        signed = {n: headers.get(n, "") for n in names if n != "x-amz-content-sha256"}
        other = _botocore_signature(ak, keys[ak], region, method, url, signed, amz_date, body,
                                    payload)
        if other != want:
            raise AssertionError(f"ctlpeer: botocore {other} != spec {want} for {creq!r}")
    if not hmac.compare_digest(want, sig):
        raise ApiError(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature "
                       "you provided.")
    return ak


def parse_invalidation(body):
    """The spec's validation of an invalidation body; returns the normalised dict."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise ApiError(400, "MalformedJSON", f"body is not JSON: {e}")
    if not isinstance(doc, dict):
        raise ApiError(400, "MalformedJSON", "body is not a JSON object")
    extra = set(doc) - _FIELDS
    if extra:
        raise ApiError(400, "UnknownField", f"unknown field {sorted(extra)[0]!r}")
    paths, keys = doc.get("paths", []), doc.get("surrogate_keys", [])
    if not isinstance(paths, list) or not isinstance(keys, list):
        raise ApiError(400, "BadRequest", "paths and surrogate_keys are lists")
    for k in ("all", "soft"):
        if not isinstance(doc.get(k, False), bool):
            raise ApiError(400, "BadRequest", f"{k} is true or false")
    if not paths and not keys and not doc.get("all"):
        raise ApiError(400, "EmptyInvalidation", "no paths, surrogate keys or all")
    if len(paths) + len(keys) > 3000:
        raise ApiError(400, "BadRequest", "more than 3000 paths and keys")
    for p in paths:
        if not isinstance(p, str) or not p.startswith("/") or "*" in p[:-1] or len(p) > 1024:
            raise ApiError(400, "InvalidPath", f"bad path {p!r}")
    for k in keys:
        if not isinstance(k, str) or not k or len(k.split()) != 1 or len(k) > 1024:
            raise ApiError(400, "BadRequest", f"bad surrogate key {k!r}")
    return {"paths": paths, "surrogate_keys": keys, "all": bool(doc.get("all")),
            "soft": bool(doc.get("soft"))}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, raw):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self):
        p = self.server.peer
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        key, status, arrived = None, 500, time.monotonic()
        try:
            key = verify(self.command, path, query, headers, body, p.keys, p.region,
                         url_base=p.url)
            with p.lock:
                if p.fail_next:
                    raise ApiError(*p.fail_next.pop(0))
                status, doc = p.route(self.command, path, query, body)
        except ApiError as e:
            status, doc = e.status, {"error": e.code, "message": e.message}
        raw = (json.dumps(doc) + "\n").encode()
        with p.lock:   # recorded before answering: the client may exit at once
            p.requests.append(Seen(self.command, path, query, headers, body, status, key,
                                   arrived))
            p.answers.append(raw)
        self._send(status, raw)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class CtlPeer:
    def __init__(self, keys=None, region="us-east-1", edges=(), role="control", objects=None):
        self.keys = dict(keys or {"AKOPS": "ops-secret"})
        self.region = region
        self.edges = list(edges)
        self.role = role
        self.objects = dict(objects or {})    # role edge: path -> [surrogate keys]
        self.invalidations = []               # oldest first
        self.requests, self.answers, self.fail_next = [], [], []
        self.lock = threading.Lock()
        self.started = time.time()
        self._srv = _Server(("127.0.0.1", 0), _Handler)
        self._srv.peer = self
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self._srv.shutdown()
        self._srv.server_close()

    # ---- the simulated fleet -------------------------------------------------

    def _applied(self, edge, inv, now):
        return not edge.silent and edge.delay is not None and now - inv["t0"] >= edge.delay

    def _acked(self, edge, now):
        return max([i["seq"] for i in self.invalidations if self._applied(edge, i, now)] or [0])

    def _status(self, inv, now):
        edges = []
        for e in self.edges:
            state = ("applied" if self._applied(e, inv, now)
                     else "unreachable" if e.silent else "pending")
            edges.append({"node": e.node, "region": e.region, "state": state,
                          "acked": self._acked(e, now),
                          "last_seen": _iso(self.started if e.silent else time.time())})
        done = all(e["state"] != "pending" for e in edges)
        return edges, "Completed" if done else "InProgress"

    def _summary(self, inv, now):
        out = {k: inv[k] for k in ("id", "seq", "created", "paths", "surrogate_keys", "all",
                                    "soft")}
        out["status"] = self._status(inv, now)[1]
        return out

    # ---- routes (called with the lock held) -----------------------------------

    def route(self, method, path, query, body):
        if self.role == "edge":
            if path != "/purge":
                raise ApiError(404, "NotFound", f"no route {path}")
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "POST /purge")
            return 200, self._purge(parse_invalidation(body))
        now = time.monotonic()
        if path == "/invalidations":
            if method == "POST":
                inv = parse_invalidation(body)
                seq = len(self.invalidations) + 1
                inv.update(id=f"I{seq}", seq=seq, created=_iso(time.time()), t0=now)
                self.invalidations.append(inv)
                return 201, {"id": inv["id"], "seq": seq, "created": inv["created"],
                             "status": self._status(inv, now)[1]}
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "GET or POST /invalidations")
            q = urllib.parse.parse_qs(query)
            limit = int(q.get("limit", ["100"])[0])
            newest = list(reversed(self.invalidations))[:limit]
            return 200, {"invalidations": [self._summary(i, now) for i in newest]}
        m = re.fullmatch(r"/invalidations/I?(\d+)", path)
        if m:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "GET /invalidations/ID")
            seq = int(m.group(1))
            if not 1 <= seq <= len(self.invalidations):
                raise ApiError(404, "NoSuchInvalidation", f"no invalidation I{seq}")
            inv = self.invalidations[seq - 1]
            edges, status = self._status(inv, now)
            out = self._summary(inv, now)
            out.update(status=status, edges=edges)
            return 200, out
        if path == "/edges":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "GET /edges")
            return 200, {"edges": [{"node": e.node, "region": e.region,
                                    "acked": self._acked(e, now),
                                    "last_seen": _iso(self.started if e.silent else time.time()),
                                    "state": "unreachable" if e.silent else "live"}
                                   for e in self.edges]}
        raise ApiError(404, "NotFound", f"no route {path}")

    def _purge(self, inv):
        def hit(path, tags):
            if inv["all"] or set(tags) & set(inv["surrogate_keys"]):
                return True
            return any(path == p or (p.endswith("*") and path.startswith(p[:-1]))
                       for p in inv["paths"])
        gone = [p for p, tags in self.objects.items() if hit(p, tags)]
        if not inv["soft"]:
            for p in gone:
                del self.objects[p]
        return {"purged": len(gone), "soft": inv["soft"]}
