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
hand and closes the worker itself; if the scan dies, the worker sees its socket close and ends.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import signal
import socket
import struct
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from twisted.internet import defer

_state: dict[str, Any] = {}  # in a worker: its detector, its OCR engine
# a scan's processes allocate many short-lived objects (requests, responses, Deferreds, readings):
# the cyclic garbage collector runs after this many new ones instead of Python's 700 (its CPU in
# the crawl's process of a 500-page scan: ~0.25 → ~0.08 s); reference counting frees the rest at once
GC_YOUNG_OBJECTS = 20_000


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


# -- the worker's loop ---------------------------------------------------------------------------
_FRAME = struct.Struct("!Q")  # each message: its length, then a pickle of it


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


def serve(calls: socket.socket, scan_end: socket.socket | None = None) -> None:
    """The worker process: read ``(function, args)`` calls from ``calls`` one at a time, in the
    order sent, and answer each with its ``(status, value)``; ends when the scan closes its end."""
    _ignore_stop_signals()
    if scan_end is not None:  # a forked worker's copy of the scan's end: else it never sees EOF
        scan_end.close()
    try:  # what the first call needs, imported while the scan's process is still starting
        import detectors.precedents  # noqa: F401
    except Exception:  # noqa: BLE001, S110 - the first call reports it
        pass
    # this process lives for one scan: the collector need not walk what it imported, nor run
    # every 700 new objects
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])
    with calls, calls.makefile("rb") as incoming:
        while len(head := incoming.read(_FRAME.size)) == _FRAME.size:
            fn, args = pickle.loads(incoming.read(_FRAME.unpack(head)[0]))
            try:
                answer = _frame(fn(*args))
            except Exception as e:  # noqa: BLE001 - the functions answer failures themselves; a value that
                answer = _frame(_failed(e))  # does not pickle is one more
            calls.sendall(answer)


# -- in the scan's process -----------------------------------------------------------------------
class WorkerLost(RuntimeError):
    """The worker process is gone (killed, out of memory) or could not be started."""


class WorkerProcess:
    """The scan's one worker process, started by the first call. Calls run one at a time, in the
    order they are made (the first builds the detector the others use).

    Calls and answers travel over one socket pair. Once the crawl's reactor runs, it reads the
    answers and sends the calls as the socket takes them (``call``): no thread in this process
    waits on the worker, and a busy worker never blocks the crawl. Before the reactor, and after it
    stopped, a call is sent and its answer awaited directly (``submit``, ``outcome``)."""

    def __init__(self) -> None:
        self._process: Any = None
        self._sock: socket.socket | None = None
        self._waiting: deque[Future] = deque()  # calls sent, in order, whose answers are still to come
        self._incoming = bytearray()
        self._outgoing = bytearray()
        self._in_reactor = False  # the reactor reads and writes the socket
        self._writing = False
        self.lost: str | None = None  # why the worker is gone (killed, out of memory), once it is

    # -- the calls -------------------------------------------------------------------------
    def submit(self, fn: Callable[..., tuple[str, Any]], *args: Any) -> Future:
        """``fn(*args)`` in the worker, as a ``concurrent.futures.Future`` of ``(status, value)``
        (usable before the crawl's reactor is installed, e.g. to build the detector while Scrapy
        starts). Raises ``WorkerLost`` when the worker is gone or cannot be started."""
        if self.lost:
            raise WorkerLost(self.lost)
        message = _frame((fn, args))  # before anything is sent: arguments that do not pickle raise here
        if self._sock is None:
            self._start()
        future: Future = Future()
        self._waiting.append(future)
        self._send(message)
        return future

    def call(self, fn: Callable[..., tuple[str, Any]], *args: Any) -> defer.Deferred:
        """``fn(*args)`` in the worker, from the crawl's reactor: a Deferred firing with ``(status, value)``."""
        try:
            if self.lost:
                raise WorkerLost(self.lost)
            if self._sock is None:
                self._start()
            if not self._in_reactor:
                self._join_reactor()
            future = self.submit(fn, *args)
        except Exception as e:  # noqa: BLE001 - the worker could not be started or has died
            self.lost = self.lost or f"{type(e).__name__}: {e}"
            return defer.succeed(("failed", f"{type(e).__name__}: {e}"))
        done: defer.Deferred = defer.Deferred()
        # the answer is read by doRead, in the reactor's thread, which runs this at once
        future.add_done_callback(lambda f: done.callback(self.outcome(f)))
        return done

    def outcome(self, future: Future) -> tuple[str, Any]:
        """``(status, value)`` of a call; outside the reactor, waits for it."""
        if not future.done():
            self._await(future)
        try:
            return future.result()
        except Exception as e:  # noqa: BLE001 - the worker died: this call, and every later one, failed
            self.lost = self.lost or f"{type(e).__name__}: {e}"
            return "failed", f"{type(e).__name__}: {e}"

    def close(self) -> None:
        """Let the worker finish the call in hand, then end it."""
        if self._in_reactor:
            self._leave_reactor()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None:
            self._process.join()
            self._process = None
        while self._waiting:  # none are left once the crawl is over
            self._waiting.popleft().set_exception(WorkerLost("the scan closed its worker"))

    # -- the process and its socket ----------------------------------------------------------
    def start(self) -> WorkerProcess:
        """Start the worker now (else the first call does): ``jianfu scan`` starts it before it
        imports Scrapy, so the worker imports the detectors meanwhile, on the other core."""
        if self._sock is None and not self.lost:
            self._start()
        return self

    def _start(self) -> None:
        # fork: the worker starts with everything this process imported (a fresh interpreter
        # would import it all again). The scan starts it before it starts any thread; the worker
        # never touches the store's connection. A process already running other threads (their
        # locks would be copied held) spawns one instead.
        forked = threading.active_count() == 1
        ours, theirs = socket.socketpair()
        try:
            self._process = multiprocessing.get_context("fork" if forked else "spawn").Process(
                target=serve, args=(theirs, ours) if forked else (theirs,), name="jianfu-scan-worker")
            self._process.start()
        except Exception:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours

    def _send(self, data: bytes) -> None:
        if not self._in_reactor:
            try:
                self._sock.sendall(data)  # type: ignore[union-attr]
            except OSError as e:
                self._gone(f"{type(e).__name__}: {e}")
            return
        self._outgoing += data
        self.doWrite()
        if self._outgoing and not self._writing and self._sock is not None:
            from twisted.internet import reactor

            reactor.addWriter(self)  # type: ignore[attr-defined]
            self._writing = True

    def _answers(self) -> None:
        """Hand each complete answer read so far to the call waiting for it."""
        while len(self._incoming) >= _FRAME.size:
            size = _FRAME.unpack_from(self._incoming)[0]
            if len(self._incoming) < _FRAME.size + size:
                return
            answer = pickle.loads(bytes(self._incoming[_FRAME.size:_FRAME.size + size]))
            del self._incoming[:_FRAME.size + size]
            self._waiting.popleft().set_result(answer)

    def _gone(self, why: str) -> None:
        """The worker is gone (its socket ended or failed): every call still waiting, and every
        later one, failed."""
        if not self.lost:
            code = self._process.exitcode if self._process is not None else None
            self.lost = f"WorkerLost: the worker process ended ({why}; exit code {code})"
        while self._waiting:
            self._waiting.popleft().set_exception(WorkerLost(self.lost))

    def _await(self, future: Future) -> None:
        """Outside the reactor: send what is queued and read answers until ``future`` has one."""
        if self._in_reactor:
            self._leave_reactor()
        sock = self._sock
        if sock is None or self.lost:
            self._gone("the scan closed its worker" if sock is None else "gone before")
            return
        try:
            if self._outgoing:
                sock.sendall(self._outgoing)
                self._outgoing.clear()
            while not future.done():
                data = sock.recv(1 << 20)
                if not data:
                    self._gone("end of its output")
                    return
                self._incoming += data
                self._answers()
        except OSError as e:
            self._gone(f"{type(e).__name__}: {e}")

    # -- in the reactor (Twisted's IReadDescriptor / IWriteDescriptor) -----------------------
    def _join_reactor(self) -> None:
        from twisted.internet import reactor

        self._sock.setblocking(False)  # type: ignore[union-attr]
        self._in_reactor = True
        reactor.addReader(self)  # type: ignore[attr-defined]

    def _leave_reactor(self) -> None:
        from twisted.internet import reactor

        self._in_reactor = False
        try:
            reactor.removeReader(self)  # type: ignore[attr-defined]
            if self._writing:
                reactor.removeWriter(self)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001, S110 - the crawl's event loop is already closed: nothing to remove
            pass
        self._writing = False
        if self._sock is not None:
            self._sock.setblocking(True)

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "jianfu-scan-worker"

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        try:
            while True:
                data = self._sock.recv(1 << 20)  # type: ignore[union-attr]
                if not data:
                    self._leave_reactor()
                    self._gone("end of its output")
                    return
                self._incoming += data
        except BlockingIOError:
            pass
        except OSError as e:
            self._leave_reactor()
            self._gone(f"{type(e).__name__}: {e}")
            return
        self._answers()

    def doWrite(self) -> None:  # noqa: N802 - Twisted's name
        try:
            while self._outgoing:
                sent = self._sock.send(self._outgoing)  # type: ignore[union-attr]
                del self._outgoing[:sent]
        except BlockingIOError:
            return
        except OSError as e:
            self._outgoing.clear()
            self._leave_reactor()
            self._gone(f"{type(e).__name__}: {e}")
            return
        if self._writing:
            from twisted.internet import reactor

            reactor.removeWriter(self)  # type: ignore[attr-defined]
            self._writing = False

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        """The reactor let go of the socket: it is shutting down (doRead and doWrite deal with the
        socket's own failures). Answers still to come are then awaited directly (``outcome``)."""
        self._in_reactor = self._writing = False
        if self._sock is not None:
            self._sock.setblocking(True)


class WorkerError(RuntimeError):
    """Work that failed in a worker process; the message holds the worker's traceback."""
