"""Alerts only for what is new (or back), never for dismissed findings; a real SMTP server
(aiosmtpd) and a real webhook receiver on 127.0.0.1; unreachable channels retry with backoff."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import demo_site.server as demo
from jianfu.cli import main
from scheduler import alerts, runs
from scheduler.plans import load_plan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Collect:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
            return "250 OK"

    handler = Collect()
    ctl = Controller(handler, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl.port, handler.messages
    ctl.stop()


@pytest.fixture
def webhook():
    posts: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", posts
    srv.shutdown()
    srv.server_close()


def alerted_ids(message) -> set[str]:
    part = next(p for p in message.iter_attachments() if p.get_filename() == "findings.json")
    return {f["id"] for f in json.loads(part.get_content())["findings"]}


def test_alerts_only_for_new_and_returned_not_dismissed(tmp_path: Path, monkeypatch, smtp, webhook) -> None:
    smtp_port, mails = smtp
    hook_url, posts = webhook
    sites_dir = tmp_path / "sites"
    shutil.copytree(demo.SITES_DIR / "qiming", sites_dir / "qiming")
    monkeypatch.setattr(demo, "SITES_DIR", sites_dir)
    plan_path = tmp_path / "plan.toml"
    with demo.DemoSites(["qiming"]) as sites:
        plan_path.write_text(f'''store = "store"
[targets.qiming]
seeds = ["启明星学堂={sites.urls['qiming']}"]
every = "1d"
[alerts]
backoff = "1s"
[alerts.email]
host = "127.0.0.1"
port = {smtp_port}
to = ["inspector@example.org"]
[alerts.webhook]
url = "{hook_url}"
''')
        plan = load_plan(plan_path)

        def run_now() -> dict:
            assert main(["schedule", "run-now", "qiming", "--plan", str(plan_path)]) == 0
            db = runs.connect(plan.store)
            try:
                return runs.list_runs(db)[-1]
            finally:
                db.close()

        def findings() -> list[dict]:
            from store import Store

            with Store(plan.store) as st:
                return list(st.findings())

        first = run_now()  # 1: everything is new → one e-mail and one webhook POST listing it all
        every = {f["id"] for f in findings()}
        assert first["new"] == len(every) > 0 and len(mails) == 1 and len(posts) == 1
        assert alerted_ids(mails[0]) == every == {f["id"] for f in posts[0]["findings"]}
        assert mails[0]["To"] == "inspector@example.org" and "qiming" in mails[0]["Subject"]

        second = run_now()  # 2: nothing changed → nothing to say
        assert (second["new"], second["returned"], second["present"], second["gone"]) == (0, 0, len(every), 0)
        assert len(mails) == 1 and len(posts) == 1

        # 3: a finding disappears (and the investigator dismissed it); a new one appears elsewhere
        text_findings = [f for f in findings() if f["source"] == "text"]
        courses = sites_dir / "qiming" / "courses.html"
        original = courses.read_text()
        # a finding whose words stand in the file as they are (not split by markup), so removing
        # them from the file removes them from the page
        gone = next(f for f in text_findings if f["url"].endswith("/courses.html") and f["text"] in original)
        assert main(["review", gone["id"], "--store", str(plan.store), "--status", "dismissed"]) == 0
        courses.write_text(original.replace(gone["text"], ""))
        teachers = sites_dir / "qiming" / "teachers.html"
        teachers.write_text(teachers.read_text().replace("</body>", f"<p>{gone['context']}</p></body>"))
        before = {f["id"] for f in findings()}
        third = run_now()
        appeared = {f["id"] for f in findings()} - before
        assert appeared and third["new"] == len(appeared) and third["gone"] >= 1
        assert len(mails) == 2 and len(posts) == 2
        assert alerted_ids(mails[1]) == appeared == {f["id"] for f in posts[1]["findings"]}

        # 4: the dismissed finding comes back → no alert for it; others that came back are alerted
        courses.write_text(original)
        fourth = run_now()
        assert fourth["returned"] >= 1
        returned_alerts = [alerted_ids(m) for m in mails[2:]]
        assert all(gone["id"] not in ids for ids in returned_alerts)
        assert fourth["alerts"] == fourth["returned"] - 1  # all that came back, minus the dismissed one


def test_unreachable_channels_retry_with_backoff_then_fail(tmp_path: Path) -> None:
    from detectors.model import Finding
    from store import Store

    dead = free_port()  # nothing listens here
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(f'''store = "store"
[alerts]
max_attempts = 3
backoff = "10s"
[alerts.email]
host = "127.0.0.1"
port = {dead}
to = ["x@example.org"]
timeout = "2s"
[alerts.webhook]
url = "http://127.0.0.1:{dead}/hook"
timeout = "2s"
''')
    plan = load_plan(plan_path)
    with Store(plan.store) as st:
        scan = st.begin_scan(["http://127.0.0.1/"], target="t")
        st.save_findings(scan, "http://127.0.0.1/", "text", "拍照搜题",
                         [Finding(category="photo_search", rule_id="r", text="拍照搜题", start=0, end=4, score=0.9,
                                  severity="high", basis="b", explanation=("x",))])
        st.finish_scan(scan)
    db = runs.connect(plan.store)
    try:
        run_id = runs.begin_run(db, "t", "run-now")
        run = runs.finish_run(db, run_id, "finished", scan, {"pages": 1}, None, plan.alerts.channels)
        assert run["new"] == 1 and run["alerts"] == 1
        # the next run of the target is not held up by pending alerts
        runs.finish_run(db, runs.begin_run(db, "t", "run-now"), "failed", None, None, "x", [])

        t0 = datetime.now(UTC)
        started = time.monotonic()
        assert alerts.drain(db, plan.alerts, now=t0) == {"sent": 0, "retry": 2, "failed": 0, "cancelled": 0}
        assert time.monotonic() - started < 5  # connection refused fails fast
        assert alerts.drain(db, plan.alerts, now=t0 + timedelta(seconds=5))["retry"] == 0  # backing off
        assert alerts.drain(db, plan.alerts, now=t0 + timedelta(seconds=11))["retry"] == 2  # 2nd attempt
        assert alerts.drain(db, plan.alerts, now=t0 + timedelta(seconds=25))["retry"] == 0  # backoff doubled: 20 s
        assert alerts.drain(db, plan.alerts, now=t0 + timedelta(seconds=32))["failed"] == 2  # 3rd: give up
        rows = alerts.outbox(db)
        assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [("email", "failed", 3),
                                                                            ("webhook", "failed", 3)]
        assert all("Connection refused" in r["last_error"] or "refused" in r["last_error"].lower() for r in rows)
        assert db.execute("SELECT COUNT(*) FROM alert_attempts WHERE ok=0").fetchone()[0] == 6
    finally:
        db.close()


def _queued_alert(plan, kinds: dict[str, str]) -> None:
    """Two findings in the store and one alert per channel listing them as ``kinds`` says."""
    from detectors.model import Finding
    from store import Store

    with Store(plan.store) as st:
        scan = st.begin_scan(["http://127.0.0.1/"], target="t")
        ids = st.save_findings(scan, "http://127.0.0.1/", "text", "拍照搜题 提前学",
                               [Finding("photo_search", "r1", "拍照搜题", 0, 4, 0.9, "high", "b"),
                                Finding("advance_teaching", "r2", "提前学", 5, 8, 0.9, "high", "b")],
                               institution="启明星学堂")
        st.finish_scan(scan)
    db = runs.connect(plan.store)
    try:
        with runs.tx(db):
            alerts.enqueue(db, 1, "t", scan, ids, dict(zip(ids, kinds.values(), strict=True)),
                           plan.alerts.channels)
    finally:
        db.close()


def test_subject_says_new_and_returned(tmp_path: Path, smtp) -> None:
    smtp_port, mails = smtp
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(f'store = "store"\n[alerts.email]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
                         'to = ["x@example.org"]\n')
    plan = load_plan(plan_path)
    _queued_alert(plan, {"a": "new", "b": "returned"})
    db = runs.connect(plan.store)
    try:
        assert alerts.drain(db, plan.alerts)["sent"] == 1
    finally:
        db.close()
    assert mails[0]["Subject"] == "[jianfu] t: 1 new, 1 returned finding(s) — 启明星学堂"
    assert alerts.subject({"target": "t", "new": 0, "returned": 2, "findings": [{"institution": None}] * 2}) \
        == "[jianfu] t: 2 returned finding(s)"


@pytest.mark.parametrize("keys, message", [
    ('username = "jianfu"', "alerts.email.password_env: required with username"),
    ('password_env = "JIANFU_SMTP_PASSWORD"', "alerts.email.username: required with password_env"),
])
def test_smtp_login_needs_username_and_password_env(tmp_path: Path, keys: str, message: str) -> None:
    from scheduler.plans import PlanError, parse_plan

    with pytest.raises(PlanError, match=message):
        parse_plan(f'store = "s"\n[alerts.email]\nhost = "h"\nto = ["x@example.org"]\n{keys}\n', tmp_path / "p.toml")


def test_missing_smtp_password_is_a_recorded_failure_not_an_empty_login(tmp_path: Path, monkeypatch, smtp) -> None:
    smtp_port, mails = smtp
    monkeypatch.delenv("JIANFU_TEST_SMTP_PASSWORD", raising=False)
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(f'store = "store"\n[alerts.email]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
                         'to = ["x@example.org"]\nusername = "jianfu"\npassword_env = "JIANFU_TEST_SMTP_PASSWORD"\n')
    plan = load_plan(plan_path)
    _queued_alert(plan, {"a": "new", "b": "new"})
    logins: list[tuple[str, str]] = []
    monkeypatch.setattr("smtplib.SMTP.login", lambda self, user, pw: logins.append((user, pw)))
    db = runs.connect(plan.store)
    try:
        assert alerts.drain(db, plan.alerts)["retry"] == 1
        (row,) = alerts.outbox(db)
        assert row["status"] == "pending" and row["attempts"] == 1
        assert "JIANFU_TEST_SMTP_PASSWORD is not set" in row["last_error"]
        assert not logins and not mails  # never connected, never tried an empty password
        monkeypatch.setenv("JIANFU_TEST_SMTP_PASSWORD", "s3cret")  # fixed: the retry logs in and sends
        assert alerts.drain(db, plan.alerts, now=datetime.now(UTC) + timedelta(hours=1))["sent"] == 1
        assert logins == [("jianfu", "s3cret")] and len(mails) == 1
    finally:
        db.close()
