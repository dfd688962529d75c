"""``jianfu worker``: a Celery worker that takes scan jobs from the broker (scheduler/queue.py)."""

from __future__ import annotations

import argparse
import os
import socket


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run scan jobs from the broker (scale-out; see docs/scale-out.md)",
                       description="Takes scan jobs the scheduler queued on the broker and runs each as a "
                                   "`jianfu scan` subprocess into the job's store. Run any number, on any "
                                   "machine that reaches the broker, the database and the shared files.")
    p.add_argument("--broker", default=os.environ.get("JIANFU_BROKER"),
                   help="Redis URL, e.g. redis://10.0.0.5:6379/0 (default: $JIANFU_BROKER)")
    p.add_argument("--concurrency", type=int, default=1, help="scans this worker runs at once (default 1)")
    p.add_argument("--ocr-threads", type=int, help="CPU threads per OCR call in each scan (default 1)")
    p.add_argument("--visibility-timeout", type=float,
                   help="seconds before an unacknowledged job goes to another worker (default 600)")
    p.add_argument("--lease", type=float, help="seconds a job stays held without a heartbeat (default 60)")
    p.add_argument("--beat", type=float, help="seconds between lease renewals (default 10)")
    p.add_argument("--restore-interval", type=float, help=argparse.SUPPRESS)
    p.add_argument("--name", help="worker name (default jianfu@HOST-PID)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=run, parser=p)


def run(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from scheduler import queue

    if not args.broker:
        raise CommandError("no broker: give --broker redis://HOST:6379/0 or set JIANFU_BROKER")
    if args.concurrency < 1 or (args.ocr_threads is not None and args.ocr_threads < 1):
        args.parser.error("--concurrency and --ocr-threads must be ≥ 1")
    lease = args.lease or queue.DEFAULTS["lease"]
    beat = args.beat or min(queue.DEFAULTS["beat"], lease / 3)
    if beat * 2 > lease:
        args.parser.error("--beat must be at most half of --lease")
    app = queue.make_app(args.broker, visibility_timeout=args.visibility_timeout, lease=lease, beat=beat,
                         restore_interval=args.restore_interval)
    if args.ocr_threads:
        app.conf.jianfu_scan_args = ("--ocr-threads", str(args.ocr_threads))
    name = args.name or f"jianfu@{socket.gethostname()}-{os.getpid()}"
    app.worker_main(["worker", "--pool=threads", f"--concurrency={args.concurrency}", "-Q", queue.QUEUE,
                     f"--hostname={name}", "--without-gossip", "--without-mingle",
                     f"--loglevel={'INFO' if args.verbose else 'WARNING'}"])
    return 0
