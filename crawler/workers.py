"""A scan's CPU work in a worker process, so the crawl's own process only fetches, archives and
stores, and the work runs on another core (the crawl's interpreter lock is never the worker's).

The worker builds the detector — the rule packs plus the precedents this store's investigators
reviewed — as the scan starts (while Scrapy starts up), then examines each page text (a
``detectors.paragraphs.Layout``); it loads the OCR engine on the first image and reads each ad
image, and examines the reading. Detectors are pure, so where they run changes nothing they find.

Each call comes back as ``("ok", value)``; ``("rejected", reason)`` for image bytes that cannot be
read as an image; or ``("failed", "Type: message")`` (the worker's traceback on the lines after
it) — never an exception, so nothing depends on what pickles. The worker ignores SIGINT and
SIGTERM: a scan told to stop (Ctrl-C reaches the whole process group) finishes the work it has in
hand and closes the worker itself; if the scan dies, the worker sees its pipe close and ends.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from twisted.internet import defer

_state: dict[str, Any] = {}  # in a worker: its detector, its OCR engine


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _failed(e: BaseException) -> tuple[str, str]:
    return "failed", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


# -- detection, in the worker --------------------------------------------------------------------
def build_detector(reviewed: list[dict[str, Any]]) -> tuple[str, Any]:
    """The worker's first call: the rule packs plus these reviewed findings as precedents."""
    try:
        from detectors.precedents import default_precedent_detector, reviewed_precedents

        _state["detector"] = default_precedent_detector().with_precedents(reviewed_precedents(reviewed))
        return "ok", None
    except Exception as e:  # noqa: BLE001 - reported with every page, as a fault
        _state["detector_failed"] = _failed(e)
        return _state["detector_failed"]


def _not_built() -> tuple[str, str] | None:
    """Why there is no detector to examine with (None once it is built)."""
    if "detector" in _state:
        return None
    return _state.get("detector_failed", ("failed", "RuntimeError: no detector was built"))


def detect_text(layout: Any) -> tuple[str, Any]:
    """The findings in a page's text (a ``Layout``), offsets into ``layout.text``."""
    if failed := _not_built():
        return failed
    try:
        return "ok", layout.detect(_state["detector"].detect)
    except Exception as e:  # noqa: BLE001 - the page is reported as a fault, the scan goes on
        return _failed(e)


def detect_image(reading: dict[str, Any]) -> tuple[str, Any]:
    """``detectors.images.image_findings`` of an image reading (``ImageReading.to_dict()``)."""
    if failed := _not_built():
        return failed
    try:
        from detectors.images import ImageReading, image_findings

        return "ok", image_findings(ImageReading.from_dict(reading), _state["detector"])
    except Exception as e:  # noqa: BLE001
        return _failed(e)


# -- OCR, in the worker --------------------------------------------------------------------------
def read_image(data: bytes, settings: dict[str, Any]) -> tuple[str, Any]:
    """Read ``data`` with the OCR engine ``settings`` name: ``ImageReading.to_dict()``, the form
    the store's OCR cache keeps."""
    from detectors.images import ImageRejected
    from detectors.images import read_image as read

    try:
        if "engine" not in _state:
            from detectors.ocr import load_engine

            # its own engine (cache=False): never one the scan's process loaded before the fork
            _state["engine"] = load_engine(settings.get("engine", "rapidocr"), cache=False,
                                           **{k: v for k, v in settings.items() if k != "engine"})
        return "ok", read(data, _state["engine"]).to_dict()
    except ImageRejected as e:
        return "rejected", str(e)
    except Exception as e:  # noqa: BLE001 - an engine failure is reported for this image, the scan goes on
        return _failed(e)


# -- in the scan's process -----------------------------------------------------------------------
class WorkerProcess:
    """The scan's one worker process, started by the first call. Calls run one at a time, in the
    order they are made (the first builds the detector the others use)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self.lost: str | None = None  # why the worker is gone (killed, out of memory), once it is

    def outcome(self, future: Future) -> tuple[str, Any]:
        """``(status, value)`` of a finished call."""
        try:
            return future.result()
        except Exception as e:  # noqa: BLE001 - the worker died: this call, and every later one, failed
            self.lost = self.lost or f"{type(e).__name__}: {e}"
            return "failed", f"{type(e).__name__}: {e}"

    def submit(self, fn: Callable[..., tuple[str, Any]], *args: Any) -> Future:
        """``fn(*args)`` in the worker, as a ``concurrent.futures.Future`` (usable before the crawl's
        reactor is installed, e.g. to build the detector while Scrapy starts)."""
        if self._pool is None:
            # fork: the worker starts with everything this process imported (a fresh interpreter
            # would import it all again). The pool forks at its first call, which the scan makes
            # before it starts any thread; the worker never touches the store's connection. A
            # process already running other threads (their locks would be copied held) spawns.
            method = "fork" if threading.active_count() == 1 else "spawn"
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method),
                                             initializer=_ignore_stop_signals)
        return self._pool.submit(fn, *args)

    def call(self, fn: Callable[..., tuple[str, Any]], *args: Any) -> defer.Deferred:
        """``fn(*args)`` in the worker: a Deferred firing with ``(status, value)``."""
        try:
            future = self.submit(fn, *args)
        except Exception as e:  # noqa: BLE001 - the worker could not be started or has died
            self.lost = self.lost or f"{type(e).__name__}: {e}"
            return defer.succeed(("failed", f"{type(e).__name__}: {e}"))
        from twisted.internet import reactor

        done: defer.Deferred = defer.Deferred()
        # the pool's own thread finishes the future; the answer is handed to the reactor's thread
        future.add_done_callback(lambda f: reactor.callFromThread(done.callback, self.outcome(f)))
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class WorkerError(RuntimeError):
    """Work that failed in a worker process; the message holds the worker's traceback."""
