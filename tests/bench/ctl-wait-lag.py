#!/usr/bin/env python3
"""How much meshcdnctl adds: the time of one `invalidate` (process start to
exit) and how late `invalidate --wait` sees Completed after the fleet got
there (its 100 ms status polling), against tests/e2e/ctlpeer.py with one
simulated edge that applies each invalidation 350 ms after it is created.

    MESHCDN_BUILD=build-rel tests/bench/ctl-wait-lag.py [RUNS]
"""
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import ctlpeer  # noqa: E402
import mcharness as h  # noqa: E402

APPLY_S = 0.35


def pct(v, f):
    return sorted(v)[min(len(v) - 1, int(f * len(v)))]


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    ctl = h.binary("meshcdnctl")
    peer = ctlpeer.CtlPeer(keys={"AKOPS": "ops-secret"},
                           edges=[ctlpeer.Edge("edge-a", delay=APPLY_S)])
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKOPS", AWS_SECRET_ACCESS_KEY="ops-secret")
    base = [ctl, "--control", peer.url, "invalidate", "/a.glb"]
    plain, lag = [], []
    try:
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run(base, check=True, capture_output=True, env=env)
            plain.append(time.monotonic() - t)
        for _ in range(runs):
            out = subprocess.run(base + ["--wait"], check=True, capture_output=True, text=True,
                                 env=env).stdout
            lag.append(float(re.search(r"Completed in ([\d.]+) s", out).group(1)) - APPLY_S)
    finally:
        peer.stop()
    print(f"invalidate, process start to exit: median {statistics.median(plain) * 1e3:.1f} ms, "
          f"max {max(plain) * 1e3:.1f} ms ({runs} runs)")
    print(f"--wait, Completed seen after the fleet completed: median "
          f"{statistics.median(lag) * 1e3:.1f} ms, p95 {pct(lag, 0.95) * 1e3:.1f} ms, "
          f"max {max(lag) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
