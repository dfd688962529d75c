"""OCR for a scan in a process of its own, so reading ads never holds up the crawl.

OCR is CPU work, much of it in Python (loading the engine, decoding, pre- and post-processing)
that would hold the crawl's interpreter lock; in a worker process it runs on another core while
the crawl goes on. The worker loads the engine on its first image and keeps it. Each read comes
back as ``("ok", ImageReading.to_dict())`` (the form the store's OCR cache keeps), ``("rejected",
reason)`` for bytes that are not a readable image, or ``("failed", "Type: message")`` when the
engine failed: never an exception, so nothing depends on what pickles.

The worker ignores SIGINT and SIGTERM: a scan told to stop (Ctrl-C goes to the whole process
group) finishes the reads it has in hand and closes the worker itself; if the scan dies, the
worker sees its pipe close and ends.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from twisted.internet import defer, threads

_engine: Any = None  # in the worker: the loaded engine


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def read_in_worker(data: bytes, settings: dict[str, Any]) -> tuple[str, Any]:
    """Runs in the worker: read ``data`` with the engine ``settings`` name (loaded once)."""
    global _engine
    from detectors.images import ImageRejected, read_image

    try:
        if _engine is None:
            from detectors.ocr import load_engine

            _engine = load_engine(settings.get("engine", "rapidocr"),
                                  **{k: v for k, v in settings.items() if k != "engine"})
        return "ok", read_image(data, _engine).to_dict()
    except ImageRejected as e:
        return "rejected", str(e)
    except Exception as e:  # noqa: BLE001 - an engine failure is reported for this image, the scan goes on
        return "failed", f"{type(e).__name__}: {e}"


def _outcome(future: Future) -> tuple[str, Any]:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - the worker died (killed, out of memory): this image failed
        return "failed", f"{type(e).__name__}: {e}"


class OcrWorker:
    """One scan's OCR worker process (``workers`` of them), started on the first read."""

    def __init__(self, settings: dict[str, Any], workers: int = 1) -> None:
        self.settings = dict(settings)
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def read(self, data: bytes) -> defer.Deferred:
        """A Deferred firing with ``(outcome, value)`` (see the module docstring)."""
        if self._pool is None:
            # spawn: a fresh interpreter, not a fork of the crawl's threads and open connections
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ignore_stop_signals)
        try:
            future = self._pool.submit(read_in_worker, data, self.settings)
        except Exception as e:  # noqa: BLE001 - the worker could not be started or has died
            return defer.succeed(("failed", f"{type(e).__name__}: {e}"))
        return threads.deferToThread(_outcome, future)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
