"""scriptorigin — an HTTP origin whose answers each test scripts (stdlib only).

    o = ScriptOrigin()                      # listening on 127.0.0.1:<ephemeral>
    o.route("/a.glb", lambda req: (200, {"Cache-Control": "max-age=60", "ETag": '"v1"'}, b"body"))
    ... o.url ...                           # http://127.0.0.1:PORT/b  (the edge's --origin)
    o.requests                              # [Request(method, path, headers, body)], in arrival order
    o.stop()                                # open connections are cut; new ones refused

A handler gets a Request and returns (status, headers dict or list of pairs, body),
body being bytes (sent with Content-Length), a list of bytes (sent chunked; a
number in the list pauses that many seconds between chunks), or
("close", bytes) (no length: the body ends when the connection closes).
Unrouted paths get 404. Paths are matched without the "/b" bucket prefix.
Every method is routed the same way (POST, PUT, ... get their request body
read into Request.body).
"""

import http.server
import socket
import socketserver
import threading
import time
from collections import namedtuple

Request = namedtuple("Request", "method path headers body", defaults=(b"",))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.origin.lock:
            self.server.origin.conns.add(self.connection)
            self.server.origin.accepted += 1

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.origin.lock:
                self.server.origin.conns.discard(self.connection)

    def log_message(self, *args):
        pass

    def _answer(self, with_body):
        o = self.server.origin
        path = self.path[len(o.prefix):] if self.path.startswith(o.prefix) else self.path
        req = Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}, self._body())
        with o.lock:
            o.requests.append(req)
            fn = o.routes.get(path.split("?")[0])
        status, headers, body = fn(req) if fn else (404, {"Cache-Control": "no-store"}, b"no route\n")
        items = headers.items() if isinstance(headers, dict) else headers
        self.send_response(status)
        names = set()
        for k, v in items:
            self.send_header(k, v)
            names.add(k.lower())
        chunked = isinstance(body, list)
        close = isinstance(body, tuple)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif close:
            self.send_header("Connection", "close")
            self.close_connection = True
            body = body[1]
        elif "content-length" not in names and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not with_body or status in (204, 304):
            return
        if chunked:
            for part in body:
                if isinstance(part, (int, float)):   # a pause between chunks (seconds)
                    time.sleep(part)
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self._answer(True)

    def do_POST(self):
        self._answer(True)

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_FROBNICATE = do_POST

    def do_HEAD(self):
        self._answer(False)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScriptOrigin:
    def __init__(self, prefix="/b", port=0):
        self.prefix = prefix
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.conns = set()                  # open connections
        self.accepted = 0                   # connections accepted so far
        self.server = _Server(("127.0.0.1", port), _Handler)   # port: e.g. an origin coming back
        self.server.origin = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def route(self, path, fn):
        with self.lock:
            self.routes[path] = fn

    def count(self, path):
        with self.lock:
            return sum(1 for r in self.requests if r.path.split("?")[0] == path)

    def last(self, path):
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path][-1]

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            with self.lock:   # kept-alive connections die with the server
                for c in list(self.conns):
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
