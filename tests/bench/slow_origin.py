#!/usr/bin/env python3
"""slow_origin.py — an HTTP/1.1 origin that answers every GET/HEAD after a fixed delay.

The miss-path benchmark needs an origin "10 ms away" without touching the
machine's network set-up (no tc/netem on lo). This server is that origin: any
path gets `--size` bytes of body, `Cache-Control: public, max-age=86400`, after
`--delay` seconds, on keep-alive connections (no pipelining needed: caches
send one request at a time per upstream connection). It counts the requests
it answers; `GET /__count` returns that count at once and is not counted.

    slow_origin.py --port P [--delay 0.010] [--size 16384]

stdlib only (asyncio protocol, pre-built response bytes), so it is not the
bottleneck at the few thousand misses per second the benchmark drives.
"""

import argparse
import asyncio
import email.utils
import time


class Origin(asyncio.Protocol):
    count = 0
    head_bytes = b""
    body = b""
    delay = 0.010
    date = (0, b"")

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.open = True

    def connection_lost(self, exc):
        self.open = False

    def data_received(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head, self.buf = self.buf[:i], self.buf[i + 4:]
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) < 2:
                self.t.close()
                return
            method, path = parts[0], parts[1]
            if path == b"/__count":
                n = str(Origin.count).encode()
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(n), n))
                continue
            Origin.count += 1
            asyncio.get_running_loop().call_later(Origin.delay, self.answer, method == b"HEAD")

    def answer(self, head_only):
        if not self.open:
            return
        now = int(time.time())
        if Origin.date[0] != now:
            Origin.date = (now, email.utils.formatdate(now, usegmt=True).encode())
        self.t.write(Origin.head_bytes + b"Date: " + Origin.date[1] + b"\r\n\r\n")
        if not head_only:
            self.t.write(Origin.body)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.010, help="seconds before each answer")
    ap.add_argument("--size", type=int, default=16384, help="body bytes")
    a = ap.parse_args()
    Origin.delay = a.delay
    Origin.body = bytes((i * 7) & 0xFF for i in range(a.size))
    Origin.head_bytes = (b"HTTP/1.1 200 OK\r\nContent-Type: model/gltf-binary\r\n"
                         b"Content-Length: %d\r\nCache-Control: public, max-age=86400\r\n"
                         b"Last-Modified: Mon, 02 Nov 2026 10:00:00 GMT\r\n"
                         b'ETag: "slow-origin"\r\n' % a.size)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Origin, "127.0.0.1", a.port, backlog=1024)
    print(f"slow_origin listening 127.0.0.1:{a.port} delay={a.delay} size={a.size}", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
