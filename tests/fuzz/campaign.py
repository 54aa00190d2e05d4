#!/usr/bin/env python3
"""Run libFuzzer targets until each has used a given amount of CPU time.

libFuzzer's -max_total_time is wall-clock; on a shared machine ten minutes of
wall clock may be three of CPU. This runs each target in slices of
-max_total_time=SLICE from its seed corpus plus a growing work corpus, adds up
the CPU time (user + system) the slices used, and stops a target once it has
used --cpu seconds. A slice that ends in a crash, leak or sanitizer report
stops that target and is reported (the artifact is left in --work/NAME/).

    tests/fuzz/campaign.py --build build-fuzz --cpu 600 --jobs 2 [TARGET ...]

Prints one line per target: CPU seconds, wall seconds, runs, coverage
(edges), work corpus size, result.
"""

import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["http1", "sigv4", "cc", "range", "meta", "inval", "path", "config", "guard"]


class Target:
    def __init__(self, name, args):
        self.name, self.args = name, args
        self.work = os.path.join(args.work, name)
        os.makedirs(self.work, exist_ok=True)
        self.cpu = self.wall = 0.0
        self.runs = self.cov = 0
        self.result = "running"
        self.proc = None
        self.log = None

    def start_slice(self):
        exe = os.path.join(self.args.build, "tests", "fuzz", "fuzz_" + self.name)
        self.log = open(os.path.join(self.work, "..", self.name + ".log"), "a+")
        self.log_start = self.log.seek(0, os.SEEK_END)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["nice", "-n", str(self.args.nice), exe, f"-max_total_time={self.args.slice}",
             f"-max_len={self.args.max_len}", "-print_final_stats=1",
             f"-artifact_prefix={self.work}/", self.work, os.path.join(HERE, "corpus", self.name)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def finish_slice(self, status, usage):
        self.wall += time.monotonic() - self.t0
        self.cpu += usage.ru_utime + usage.ru_stime
        self.log.seek(self.log_start)
        text = self.log.read()
        self.log.close()
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
        self.runs += int(m.group(1)) if m else 0
        covs = re.findall(r"\bcov: (\d+)", text)
        if covs:
            self.cov = max(self.cov, int(covs[-1]))
        bad = re.search(r"(ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)[^\n]*|runtime error:[^\n]*)", text)
        if status != 0 or bad:
            self.result = "FOUND: " + (bad.group(1) if bad else f"exit {status}")
        elif self.cpu >= self.args.cpu:
            self.result = "clean"
        self.proc = None

    def line(self):
        corpus = len(os.listdir(self.work))
        return (f"{self.name:8} cpu {self.cpu:7.0f} s  wall {self.wall:7.0f} s  runs {self.runs:>12,}  "
                f"cov {self.cov:5}  corpus {corpus:6}  {self.result}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build-fuzz", help="the MESHCDN_FUZZ=ON build directory")
    ap.add_argument("--work", default=None, help="work corpora and logs (default BUILD/work)")
    ap.add_argument("--cpu", type=float, default=600, help="CPU seconds per target")
    ap.add_argument("--slice", type=int, default=120, help="wall seconds per libFuzzer run")
    ap.add_argument("--jobs", type=int, default=1, help="targets run at once")
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("targets", nargs="*", default=TARGETS)
    args = ap.parse_args()
    args.work = args.work or os.path.join(args.build, "work")
    pending = [Target(n, args) for n in args.targets]
    active, done = {}, []
    while pending or active:
        while pending and len(active) < args.jobs:
            t = pending.pop(0)
            t.start_slice()
            active[t.proc.pid] = t
        pid, status, usage = os.wait4(-1, 0)
        t = active.pop(pid, None)
        if t is None:
            continue
        t.finish_slice(os.waitstatus_to_exitcode(status), usage)
        if t.result == "running":
            t.start_slice()
            active[t.proc.pid] = t
        else:
            done.append(t)
            print(t.line(), flush=True)
    return 1 if any(t.result != "clean" for t in done) else 0


if __name__ == "__main__":
    sys.exit(main())
