#!/usr/bin/env python3
"""delayproxy.py — the delaying TCP proxy of deploy/lab's loopback mode.

    delayproxy.py SPEC.json

SPEC is a list of links {"name", "listen" (a 127.0.0.1 port), "host", "port",
"one_way_ms"}. Each link accepts connections on its port and connects each to
host:port; every chunk read on either side is written to the other
one_way_ms later, in order (propagation delay: no bandwidth limit, no loss),
and a connection's first bytes towards the server wait one round trip more
(the handshake a far client would have waited for). An EOF becomes a half
close and a reset an abort, each after the data before it; a refused
connection is a reset to the client one round trip later. Prints
"msg=proxy-link ..." per link, then "msg=proxy-ready"; SIGTERM or SIGINT stops it.
Standard library only.
"""

import asyncio
import json
import signal
import socket
import sys


async def _pump(reader, writer, delay, not_before):
    """Copy reader -> writer, each chunk held `delay` s (and none before
    not_before, the emulated handshake); EOF becomes a half close, a reset an
    abort, both after the data before them."""
    loop = asyncio.get_running_loop()
    q = asyncio.Queue(maxsize=256)

    async def rd():
        try:
            while True:
                data = await reader.read(65536)
                await q.put((max(loop.time(), not_before) + delay, data or b""))
                if not data:
                    return
        except (ConnectionError, OSError):
            await q.put((loop.time() + delay, None))

    async def wr():
        while True:
            t, data = await q.get()
            dt = t - loop.time()
            if dt > 0:
                await asyncio.sleep(dt)
            if data is None:
                writer.transport.abort()
                return
            if not data:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except (ConnectionError, OSError):
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    await asyncio.gather(rd(), wr())


async def _serve_link(link):
    delay = link["one_way_ms"] / 1000.0
    loop = asyncio.get_running_loop()

    async def on_conn(creader, cwriter):
        t0 = loop.time()
        try:
            ureader, uwriter = await asyncio.open_connection(link["host"], link["port"])
        except OSError:
            # what a client far away sees: the refusal one round trip later, as a reset
            await asyncio.sleep(2 * delay)
            sock = cwriter.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            cwriter.transport.abort()
            return
        try:
            await asyncio.gather(_pump(creader, uwriter, delay, t0 + 2 * delay), _pump(ureader, cwriter, delay, 0))
        finally:
            for w in (cwriter, uwriter):
                w.close()

    return await asyncio.start_server(on_conn, "127.0.0.1", link["listen"], reuse_address=True)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: delayproxy.py SPEC.json")
    with open(sys.argv[1]) as f:
        links = json.load(f)

    async def main():
        servers = [await _serve_link(l) for l in links]
        for l in links:
            print(f"msg=proxy-link name={l['name']} listen=127.0.0.1:{l['listen']} to={l['host']}:{l['port']} "
                  f"one_way_ms={l['one_way_ms']:g}", flush=True)
        print("msg=proxy-ready", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        await stop.wait()
        for s in servers:
            s.close()

    asyncio.run(main())


if __name__ == "__main__":
    main()
