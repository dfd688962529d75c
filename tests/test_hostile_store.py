"""Hostile stores (issue 13.4) and how every command ends (jianfu/cli.py): a damaged store is one
line and exit 1 for every command that opens it, nothing is written into it, and a read-only command
never writes to a store, damaged or not. A fault in jianfu itself ends in one line naming a log file."""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from detectors import detect
from store import Store
from tests.conftest import jianfu

TEXT = "幼小衔接拼音班火热招生\n拍照搜题秒出答案\n希望杯冲刺班保证拿奖\n" * 40


def real_store(path: Path) -> Path:
    with Store(path) as s:
        sid = s.begin_scan(["http://127.0.0.1:9/"])
        for i in range(40):
            s.save_findings(sid, f"http://127.0.0.1:9/p{i}.html", "text", TEXT, detect(TEXT), institution="测试机构")
        s.finish_scan(sid)
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    return real_store(tmp_path_factory.mktemp("good") / "store")


def damaged(kind: str, good: Path, where: Path) -> Path:
    where.mkdir(parents=True)
    db = where / "jianfu.sqlite3"
    whole = (good / "jianfu.sqlite3").read_bytes()
    if kind == "random":
        db.write_bytes(os.urandom(64 * 1024))
    elif kind == "truncated":
        db.write_bytes(whole[: len(whole) // 3])
    elif kind == "header_only":
        db.write_bytes(whole[:100])
    elif kind == "empty":
        db.write_bytes(b"")
    elif kind == "foreign_sqlite":  # a real SQLite file, not a jianfu store
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
    return where


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


COMMANDS = [
    ["findings", "--store", "{s}"],
    ["findings", "--store", "{s}", "--format", "jsonl"],
    ["campaigns", "--store", "{s}"],
    ["search", "幼小衔接", "--store", "{s}"],
    ["review", "0123456789ab", "--store", "{s}", "--status", "dismissed"],
    ["export", "--store", "{s}", "--institution", "测试机构", "--out", "{tmp}/packet.zip", "--no-pdf"],
    ["runs", "--store", "{s}"],
    ["scan", "http://127.0.0.1:9/", "--store", "{s}", "--quiet", "--timeout", "2"],
]


# an empty file is an empty SQLite database: only the read-only commands refuse it (a command that
# writes starts a new store in it, as in a new directory)
CASES = [(kind, cmd) for kind in ("random", "truncated", "header_only", "empty", "foreign_sqlite")
         for cmd in COMMANDS if kind != "empty" or cmd[0] in ("findings", "campaigns")]


@pytest.mark.parametrize("kind,cmd", CASES, ids=[f"{k}-{'-'.join(c[:1] + c[3:4])}" for k, c in CASES])
def test_a_damaged_store_is_one_line_and_left_as_it_was(good_store, tmp_path, kind, cmd):
    store = damaged(kind, good_store, tmp_path / "store")
    before = snapshot(store)
    proc = jianfu(*[a.replace("{s}", str(store)).replace("{tmp}", str(tmp_path)) for a in cmd], timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jianfu {cmd[0]}: error: "), proc.stderr
    assert "存储库" in lines[0]
    assert snapshot(store) == before  # no blobs/, no keys/, no -wal/-shm, not one byte changed
    assert not (tmp_path / "packet.zip").exists()


@pytest.mark.parametrize("cmd", [["findings", "--store", "{s}", "--format", "jsonl"], ["campaigns", "--store", "{s}"]])
def test_read_only_commands_never_write_to_a_store(good_store, tmp_path, cmd):
    store = tmp_path / "copy"
    store.mkdir()
    (store / "jianfu.sqlite3").write_bytes((good_store / "jianfu.sqlite3").read_bytes())  # no blobs/ yet
    db_before = (store / "jianfu.sqlite3").read_bytes()
    proc = jianfu(*[a.replace("{s}", str(store)) for a in cmd])
    assert proc.returncode == 0, proc.stderr
    if cmd[0] == "findings":
        assert len(proc.stdout.splitlines()) == len(list(Store(good_store, read_only=True).findings()))
    assert not (store / "blobs").exists()
    assert (store / "jianfu.sqlite3").read_bytes() == db_before


def test_a_fault_in_jianfu_is_one_line_naming_its_log(tmp_path, monkeypatch, capsys):
    """A bug cannot be summoned on purpose from a real command, so this one is planted: a command
    whose function raises (a test double for a defect). The log file must hold the traceback."""
    from jianfu import cli

    def boom(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("planted fault")

    real = cli.build_parser

    def parser_with_boom() -> argparse.ArgumentParser:
        parser = real()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.add_parser("boom").set_defaults(func=boom)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_boom)
    monkeypatch.setenv("JIANFU_LOG_DIR", str(tmp_path / "logs"))
    assert cli.main(["boom"]) == cli.EXIT_FAULT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and "ZeroDivisionError: planted fault" in err[0]
    log = Path(err[0].rsplit("详细记录已写入 ", 1)[1])
    assert log.parent == tmp_path / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "in boom" in text and "planted fault" in text
