"""Where a store's rows live: an SQLite file (the embedded default) or a PostgreSQL database.

``connect(location)`` opens either. SQLite gets a plain ``sqlite3.Connection`` (nothing changes
for the embedded store). PostgreSQL gets ``PostgresConnection``, a thin adapter with the small
part of the sqlite3 API the code base uses, so every Store method and every SQL statement runs
unchanged on both:

- ``execute`` / ``executemany`` / ``executescript``, cursors with ``fetchone``/``fetchall``,
  iteration, ``rowcount``, ``description`` and ``lastrowid`` (an INSERT into a table whose ``id``
  is an identity column gets ``RETURNING id``);
- ``with db:`` is one transaction (nested: a savepoint); outside it every statement commits;
  ``BEGIN IMMEDIATE`` / ``COMMIT`` / ``ROLLBACK`` issued as statements work as in SQLite;
- rows are addressable by index and by column name (``dict(row)`` works) like ``sqlite3.Row``;
- ``?`` placeholders become ``%s``; ``IN ()`` (an empty list) keeps SQLite's meaning;
- DDL is translated mechanically: ``INTEGER PRIMARY KEY [AUTOINCREMENT]`` → identity column,
  INTEGER → BIGINT, REAL → DOUBLE PRECISION, BLOB → BYTEA; schema creation is serialised across
  processes with an advisory lock;
- errors are raised as the ``sqlite3`` exception classes the code already catches
  (``sqlite3.IntegrityError`` for a unique violation, ``sqlite3.OperationalError`` for a lost
  connection), the driver's error chained as the cause.

The SQL must be portable (see docs/scale-out.md, "SQL that runs on both"): no ``INSERT OR
IGNORE/REPLACE``, no ``rowid``, no scalar ``MIN(a, b)``, every non-aggregated column in
``GROUP BY``, no boolean sums. SQLite's FTS5 search index exists only in SQLite stores.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DB_NAME = "jianfu.sqlite3"
SCHEMA_LOCK = 7317  # pg_advisory_xact_lock key: one process creates/migrates the schema at a time


def is_database_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def split_location(location: str | Path) -> tuple[str | None, Path]:
    """(PostgreSQL conninfo or None, the directory for blobs, WARCs and keys).

    A PostgreSQL store names its shared file directory (a mount every worker sees) with
    ``?files=/path`` or the environment variable ``JIANFU_FILES``."""
    import os

    if not is_database_url(location):
        return None, Path(location)
    parts = urlsplit(str(location))
    query = parse_qsl(parts.query, keep_blank_values=True)
    files = next((v for k, v in query if k == "files"), None) or os.environ.get("JIANFU_FILES")
    if not files:
        raise ValueError("a PostgreSQL store needs a shared file directory: add ?files=/path to the URL "
                         "(or set JIANFU_FILES)")
    conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "files"])))
    return conninfo, Path(files)


def store_exists(location: str | Path) -> bool:
    """Is there a store at ``location`` (a directory with the SQLite file, or a reachable database)?"""
    if not is_database_url(location):
        return (Path(location) / DB_NAME).is_file()
    try:
        db = connect(location)
    except (sqlite3.Error, ValueError):
        return False
    try:
        return bool(db.execute("SELECT 1 FROM information_schema.tables WHERE table_name='scans'").fetchone())
    finally:
        db.close()


class SqliteConnection(sqlite3.Connection):
    """``sqlite3.Connection`` that can group many ``with db:`` blocks into one transaction.

    Outside a batch it is a plain connection. Inside ``batched(seconds)`` (one scan's writes), each
    ``with db:`` block is a savepoint of a transaction that is committed once it has been open
    ``seconds`` (checked as each block ends, and by ``commit_batch()``, which a crawl calls on a
    timer while it waits on the network): a block that fails still undoes only its own writes,
    and a process killed mid-batch loses only the writes of the last ``seconds``. The batch
    takes the write lock when it begins (``BEGIN IMMEDIATE``), so its reads never hold an old
    snapshot that another writer could invalidate."""

    _batch_seconds: float | None = None
    _batch_began = 0.0
    _depth = 0  # open ``with db:`` blocks of the batch

    @contextmanager
    def batched(self, seconds: float) -> Iterator[None]:
        self.commit()
        self._batch_seconds = seconds
        try:
            yield
        finally:
            self._batch_seconds = None
            if self.in_transaction:
                self.commit()

    def commit_batch(self, *, due_only: bool = False) -> None:
        """Commit the open batch (only if it has been open long enough, with ``due_only``)."""
        if self._batch_seconds is None or not self.in_transaction:
            return
        if self._depth:  # inside a block: it ends first (a block is never split across commits)
            return
        if not due_only or time.monotonic() - self._batch_began >= self._batch_seconds:
            self.commit()

    def __enter__(self) -> SqliteConnection:
        if self._batch_seconds is None:
            return super().__enter__()
        if not self.in_transaction:
            self.execute("BEGIN IMMEDIATE")
            self._batch_began = time.monotonic()
        self.execute("SAVEPOINT batched_unit")
        self._depth += 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if self._batch_seconds is None:
            return super().__exit__(exc_type, exc, tb)
        self._depth -= 1
        if not self.in_transaction:  # someone committed inside the block: nothing left to release
            return super().__exit__(exc_type, exc, tb)
        if exc_type is not None:
            self.execute("ROLLBACK TO batched_unit")
        self.execute("RELEASE batched_unit")
        if exc_type is None:
            self.commit_batch(due_only=True)
        return False


def connect(location: str | Path, *, autocommit: bool = False) -> Any:
    """An SQLite connection to ``location/jianfu.sqlite3`` (a ``SqliteConnection``) or a
    PostgresConnection to the URL. ``autocommit`` (SQLite): no implicit transactions, for code
    that issues BEGIN itself."""
    conninfo, files = split_location(location)
    if conninfo is None:
        db = sqlite3.connect(files / DB_NAME, check_same_thread=False, timeout=30, factory=SqliteConnection,
                             **({"isolation_level": None} if autocommit else {}))
        db.row_factory = sqlite3.Row
        return db
    return PostgresConnection(conninfo, str(location))


# -- PostgreSQL ---------------------------------------------------------------------------------

def schema_digest(db: Any, name: str) -> str | None:
    """The digest of the DDL ``name`` last applied to this PostgreSQL database (table ``jianfu_schema``)."""
    if not db.execute("SELECT 1 FROM information_schema.tables WHERE table_name='jianfu_schema' "
                      "AND table_schema=current_schema()").fetchone():
        return None
    row = db.execute("SELECT digest FROM jianfu_schema WHERE name=?", (name,)).fetchone()
    return row[0] if row else None


def apply_schema_once(db: Any, name: str, digest: str, apply: Any) -> None:
    """PostgreSQL: run ``apply()`` (DDL) only when ``digest`` differs from the one recorded for
    ``name``, one process at a time. Every ``CREATE INDEX IF NOT EXISTS`` locks its table against
    writers even when the index exists, so an up-to-date database runs no DDL when opened."""
    if schema_digest(db, name) == digest:
        return
    with db:  # the advisory lock is held until this transaction ends
        db.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        if schema_digest(db, name) != digest:
            apply()
            db.execute("CREATE TABLE IF NOT EXISTS jianfu_schema (name TEXT PRIMARY KEY, digest TEXT NOT NULL)")
            db.execute("INSERT INTO jianfu_schema(name, digest) VALUES (?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET digest=excluded.digest", (name, digest))


_TOKEN = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(--[^\n]*)|(\?)|(%)|(\bIN\s*\(\s*\))""", re.I)


def translate_sql(sql: str) -> str:
    """``?`` → ``%s`` and ``IN ()`` → an empty set outside quotes and comments; ``%`` → ``%%``
    everywhere (the driver reads ``%`` inside string literals too)."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1) or m.group(2):
            return m.group(0).replace("%", "%%")
        if m.group(4):
            return "%s"
        if m.group(5):
            return "%%"
        if m.group(6):
            return "IN (SELECT NULL WHERE FALSE)"
        return m.group(0)
    return _TOKEN.sub(sub, sql)


_DDL_RULES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?", re.I),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
]
_IDENTITY = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\(\s*id\s+INTEGER\s+PRIMARY\s+KEY", re.I)


def translate_ddl(script: str) -> str:
    """SQLite DDL (portable types) → PostgreSQL DDL, quoted strings and comments left alone."""
    out = []
    for m in re.finditer(r"('(?:[^']|'')*')|(--[^\n]*)|([^'-]+|-)", script):
        chunk = m.group(3)
        if chunk is None:
            out.append(m.group(0))
            continue
        for pattern, repl in _DDL_RULES:
            chunk = pattern.sub(repl, chunk)
        out.append(chunk)
    return "".join(out)


class Row(tuple):
    """A result row like ``sqlite3.Row``: by index, by column name, ``keys()``, ``dict(row)``."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _value(v: Any) -> Any:
    if isinstance(v, Decimal):  # SUM over BIGINT is NUMERIC in PostgreSQL, an int in SQLite
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def _param(v: Any) -> Any:
    if isinstance(v, bool):  # SQLite stores booleans as 0/1 in INTEGER columns
        return int(v)
    if isinstance(v, str) and "\x00" in v:  # PostgreSQL text cannot hold NUL; keep offsets intact
        return v.replace("\x00", "\ufffd")
    return v


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return None
    cls = type("Row", (Row,), {"_names": tuple(d.name for d in desc), "__slots__": ()})
    return lambda values: cls(_value(v) for v in values)


class PostgresCursor:
    def __init__(self, cur: Any, lastrowid: int | None = None) -> None:
        self._cur = cur
        self.lastrowid = lastrowid
        self.rowcount = cur.rowcount
        self.description = cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresConnection:
    """The sqlite3-like face of one psycopg connection (see the module docstring)."""

    def __init__(self, conninfo: str, location: str) -> None:
        import psycopg

        self.location = location
        self._lock = threading.RLock()
        self._tx: list[Any] = []
        try:
            self.conn = psycopg.connect(conninfo, autocommit=True, row_factory=_row_factory, connect_timeout=10)
        except psycopg.Error as e:
            raise sqlite3.OperationalError(f"cannot connect to PostgreSQL: {_one_line(e)}") from e
        self._identity: set[str] = set()
        self._load_identity()

    def _load_identity(self) -> None:
        self._identity = {r[0] for r in self.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name='id' AND is_identity='YES' "
            "AND table_schema=current_schema()")}

    # -- statements --------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> PostgresCursor:
        verb = sql.lstrip()[:20].upper()
        if verb.startswith("BEGIN"):
            self.__enter__()
            return PostgresCursor(self.conn.cursor())
        if verb.startswith("COMMIT"):
            self.__exit__(None, None, None)
            return PostgresCursor(self.conn.cursor())
        if verb.startswith("ROLLBACK"):
            rollback = RuntimeError("ROLLBACK")  # psycopg rolls back only when given an exception
            self.__exit__(RuntimeError, rollback, None)
            return PostgresCursor(self.conn.cursor())
        if verb.startswith("PRAGMA"):
            return PostgresCursor(self.conn.cursor())  # SQLite tuning: nothing to do here
        if verb.startswith(("CREATE", "ALTER")):  # e.g. Store.ADDED_COLUMNS: REAL must not become float4
            sql = translate_ddl(sql)
        text, returning = translate_sql(sql), False
        if verb.startswith("INSERT") and "RETURNING" not in sql.upper():
            m = re.match(r"\s*INSERT\s+INTO\s+(\w+)", sql, re.I)
            if m and m.group(1).lower() in self._identity:
                text, returning = text.rstrip().rstrip(";") + " RETURNING id", True
        with self._lock, _errors():
            cur = self.conn.execute(text, [_param(p) for p in params])
            lastrowid = None
            if returning:
                row = cur.fetchone()
                lastrowid = row[0] if row else None
            return PostgresCursor(cur, lastrowid)

    def executemany(self, sql: str, seq: Any) -> PostgresCursor:
        rows = [[_param(p) for p in params] for params in seq]
        with self._lock, _errors():
            cur = self.conn.cursor()
            if rows:
                cur.executemany(translate_sql(sql), rows)
            return PostgresCursor(cur)

    def executescript(self, script: str) -> None:
        """DDL, translated, as one transaction holding the schema lock (workers start at once)."""
        with self._lock, _errors(), self.conn.transaction():
            self.conn.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
            self.conn.execute(translate_ddl(script).encode())
        self._identity |= {m.group(1).lower() for m in _IDENTITY.finditer(script)}

    # -- transactions ------------------------------------------------------------------------
    def __enter__(self) -> PostgresConnection:
        self._lock.acquire()
        tx = self.conn.transaction()
        try:
            with _errors():
                tx.__enter__()
        except BaseException:
            self._lock.release()
            raise
        self._tx.append(tx)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        tx = self._tx.pop()
        try:
            with _errors():
                tx.__exit__(exc_type, exc, tb)
        finally:
            self._lock.release()

    def commit(self) -> None:
        """sqlite3 compatibility: statements outside ``with db:`` are already committed."""

    def close(self) -> None:
        self.conn.close()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


class _errors:
    """Re-raise psycopg errors as the sqlite3 exception classes the callers catch."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            return
        import psycopg

        if isinstance(exc, psycopg.IntegrityError):
            raise sqlite3.IntegrityError(_one_line(exc)) from exc
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            raise sqlite3.OperationalError(_one_line(exc)) from exc
        if isinstance(exc, psycopg.Error):
            raise sqlite3.DatabaseError(_one_line(exc)) from exc
