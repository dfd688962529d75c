"""The scan's worker process (``crawler/workers.py``) as the crawl's reactor sees it: calls are sent
as the socket takes them and answers read when they come, so a worker busy with one call (an OCR
engine loading, a large image) never holds up the crawl, and every answer reaches its own call."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

BUSY_WORKER = r"""
import json, sys, time, zlib
from crawler.workers import WorkerProcess

def work(seconds, payload):
    time.sleep(seconds)
    return "ok", [len(payload), zlib.crc32(payload)]

worker = WorkerProcess()
first = worker.submit(work, 0, b"before the reactor")  # as a scan builds its detector
from twisted.internet import defer, reactor, task

ticks = []
task.LoopingCall(lambda: ticks.append(time.monotonic())).start(0.02)
big = bytes(range(256)) * (8 * 2**20 // 256)  # 8 MB: far more than the socket takes at once
small = [bytes([i]) * (1000 + i) for i in range(50)]
report = {}

def crawl():
    t0 = time.monotonic()
    # the worker sleeps on the first call while the 8 MB of the second wait to be read
    calls = [worker.call(work, 0.6, b"busy"), worker.call(work, 0, big)] + [worker.call(work, 0, b) for b in small]
    report["sending_s"] = time.monotonic() - t0
    done = defer.gatherResults(calls)
    done.addCallback(lambda answers: report.update(answers=answers))
    done.addBoth(lambda _: reactor.stop())

reactor.callWhenRunning(crawl)
reactor.run()
report["first"] = worker.outcome(first)
report["longest_gap_s"] = max(b - a for a, b in zip(ticks, ticks[1:]))
report["expected"] = [[len(b), zlib.crc32(b)] for b in [b"busy", big, *small]]
worker.close()
report["lost"] = worker.lost
print(json.dumps(report))
"""


def test_a_busy_worker_does_not_hold_up_the_reactor_and_answers_each_call_in_turn():
    out = subprocess.run([sys.executable, "-c", BUSY_WORKER], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    report = json.loads(out)
    assert report["first"] == ["ok", [18, report["first"][1][1]]]
    assert [a[1] for a in report["answers"]] == report["expected"]  # each answer for its own call
    assert all(a[0] == "ok" for a in report["answers"])
    assert report["sending_s"] < 0.45  # queued without waiting for the worker (which sleeps 0.6 s first)
    assert report["longest_gap_s"] < 0.5  # the reactor kept running while the worker slept 0.6 s
    assert report["lost"] is None
