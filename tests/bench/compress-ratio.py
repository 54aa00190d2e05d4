#!/usr/bin/env python3
"""Stored bytes per encoding for the catalog generator's .gltf files: a
catalog behind the real origin, an edge with compress = br gzip, each .gltf
fetched once with Accept-Encoding: br (the one origin fetch), then the gzip
and identity copies read back as hits; prints each file's three lengths (the
stored copies' Content-Length) and the ratios.

    MESHCDN_BUILD=build-rel tests/bench/compress-ratio.py [--count N] [--gltf-count N]
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import mcharness as h  # noqa: E402

AK, SECRET = "AKIDCOMPRESSBENCH", "compress-bench-secret-0123456789"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", default="8")
    ap.add_argument("--gltf-count", default="4")
    ap.add_argument("--sizes", default="fixed:200k")
    a = ap.parse_args()
    tmp = h.tempdir()
    try:
        run(a, tmp)
    finally:
        shutil.rmtree(tmp, True)


def run(a, tmp):
    bucket = f"{tmp}/root/assets"
    p = h.run("meshcdn-load", ["catalog", "--out", bucket, "--count", a.count, "--seed", "11",
                                "--sizes", a.sizes, "--gltf-count", a.gltf_count])
    assert p.returncode == 0, p.stderr
    h.write_keys(f"{tmp}/keys", [(AK, SECRET)])
    h.write_keys(f"{tmp}/cred", [(AK, SECRET)])
    with h.Daemon("meshcdn-origin", ["--root", f"{tmp}/root", "--keys", f"{tmp}/keys",
                                     "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]) as origin:
        oh, op = origin.addr["s3"]
        with h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                       "--origin", f"http://{oh}:{op}/assets", "--credentials", f"{tmp}/cred",
                                       "--store", f"{tmp}/store", "--store-size", "64M", "--node-id", "c1",
                                       "--cache.compress", "br gzip"], listeners=("http", "admin")) as edge:
            with open(f"{bucket}/index.json") as f:
                paths = [o["path"] for o in json.load(f)["objects"] if o["path"].endswith(".gltf")]
            tot = {"identity": 0, "gzip": 0, "br": 0}
            print(f"{'file':48} {'identity':>9} {'gzip':>7} {'br':>7}")
            for path in paths:
                h.http("GET", *edge.addr["http"], path, {"Accept-Encoding": "br"})
                time.sleep(0.1)
                size = {}
                for enc in ("identity", "gzip", "br"):
                    s, rh, body, _ = h.http("GET", *edge.addr["http"], path, {"Accept-Encoding": enc})
                    assert s == 200 and rh["x-cache"][0].startswith("Hit"), (path, enc, rh["x-cache"])
                    size[enc] = len(body)
                    tot[enc] += len(body)
                print(f"{path:48} {size['identity']:9} {size['gzip']:7} {size['br']:7}")
            print(f"{'total':48} {tot['identity']:9} {tot['gzip']:7} {tot['br']:7}")
            print(f"stored/identity: gzip {tot['gzip'] / tot['identity']:.2f}, br {tot['br'] / tot['identity']:.2f}")


if __name__ == "__main__":
    main()
