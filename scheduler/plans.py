"""Scan plans: one TOML file, loaded with ``tomllib`` and validated into frozen dataclasses.

Every error is a ``PlanError`` naming the file and the key, e.g.
``plans.toml: targets.qiming.cron: bad cron expression '61 * * * *': ...``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "Asia/Shanghai"
RENDER_MODES = ("static", "browser")
NAME_RE = re.compile(r"^[\w-]{1,64}$")
_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class PlanError(ValueError):
    """A plan file that cannot be used; the message is one line naming the file and key."""


def parse_duration(value: Any, where: str) -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` → seconds (> 0)."""
    if isinstance(value, bool):
        raise PlanError(f"{where}: expected a duration like '30s', '15m', '6h' or '1d', not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DUR_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise PlanError(f"{where}: expected a duration like '30s', '15m', '6h' or '1d', not {value!r}")
    if seconds <= 0:
        raise PlanError(f"{where}: duration must be positive, not {value!r}")
    return seconds


def parse_seed(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise PlanError(f"{where}: a seed is a string 'URL' or '机构名=URL', not {raw!r}")
    name, sep, url = raw.partition("=")
    if not sep or "://" in name:
        url = raw
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"{where}: not an http(s) URL: {raw!r}")
    return raw.strip()


def timezone(name: Any, where: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise PlanError(f"{where}: expected a time zone name like 'Asia/Shanghai', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlanError(f"{where}: unknown time zone {name!r}") from None


@dataclass(frozen=True)
class LedgerSelection:
    """``ledger = {district = "东城区", status = "approved", type = "subject"}`` in a target: every web
    site of the institutions the ledger selects, looked up at each run (``target_seeds``)."""

    district: tuple[str, ...] = ()      # any district when empty
    status: tuple[str, ...] = ()        # approved | pending | blacklisted | revoked | cancelled; any when empty
    type: str | None = None             # subject | non_subject; any when None

    def describe(self) -> str:
        parts = [f"district={'/'.join(self.district)}" if self.district else "",
                 f"status={'/'.join(self.status)}" if self.status else "", f"type={self.type}" if self.type else ""]
        return "ledger(" + ", ".join(p for p in parts if p) + ")"


@dataclass(frozen=True)
class Target:
    name: str
    seeds: tuple[str, ...]
    cron: str | None = None
    every: float | None = None          # seconds
    timezone: str = DEFAULT_TZ
    render: str = "static"
    depth: int = 3
    max_pages: int = 500
    concurrency: int = 16
    district: str | None = None
    timeout: float = 2 * 3600           # seconds a crawl may run before it is killed
    ledger: LedgerSelection | None = None   # also scan the ledger's institutions (target_seeds)

    @property
    def job_id(self) -> str:
        return f"target:{self.name}"

    @property
    def spec(self) -> str:
        """What the trigger depends on: a job is rescheduled only when this changes."""
        how = f"cron:{self.cron}" if self.cron else f"every:{self.every:g}s"
        return f"{how}@{self.timezone}"

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        tz = ZoneInfo(self.timezone)
        if self.cron:
            return CronTrigger.from_crontab(self.cron, timezone=tz)
        return IntervalTrigger(seconds=self.every, timezone=tz)

    def describe(self) -> str:
        return f"cron '{self.cron}'" if self.cron else f"every {_fmt_seconds(self.every or 0)}"


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int = 25
    sender: str = "jianfu@localhost"
    to: tuple[str, ...] = ()
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None     # name of the environment variable holding the password
    timeout: float = 10.0


@dataclass(frozen=True)
class WebhookChannel:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True)
class Alerts:
    email: EmailChannel | None = None
    webhook: WebhookChannel | None = None
    max_attempts: int = 8
    backoff: float = 30.0               # first retry delay; doubles per attempt
    backoff_max: float = 3600.0

    @property
    def channels(self) -> list[str]:
        return [c for c in ("email", "webhook") if getattr(self, c) is not None]


@dataclass(frozen=True)
class Plan:
    path: Path
    store: Path | str                   # a directory, or a PostgreSQL store URL (store/backends.py)
    jobstore_url: str
    timezone: str = DEFAULT_TZ
    misfire_grace: float = 86400.0
    tick: float = 10.0
    targets: dict[str, Target] = field(default_factory=dict)
    alerts: Alerts = field(default_factory=Alerts)
    broker: str | None = None           # Celery broker URL: scans run as jobs on workers (scheduler/queue.py)

    def target(self, name: str) -> Target:
        try:
            return self.targets[name]
        except KeyError:
            known = ", ".join(sorted(self.targets)) or "none"
            raise PlanError(f"unknown target {name!r} in {self.path} (known: {known})") from None


def _fmt_seconds(s: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{int(s // n)}{unit}"
    return f"{s:g}s"


# -- validation helpers -------------------------------------------------------------------------
class _Table:
    """A TOML table being read: typed getters, and unknown keys reported at the end."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise PlanError(f"{where}: expected a table, not {type(data).__name__}")
        self.data, self.where, self.used = data, where, set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        v = self.data[key]
        if isinstance(v, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise PlanError(f"{self._key(key)}: expected {_kind(kind)}, not {v!r}")
        if not isinstance(v, kind):
            raise PlanError(f"{self._key(key)}: expected {_kind(kind)}, not {v!r}")
        return v

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def int(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self.get(key, int, default)
        if not lo <= v <= hi:
            raise PlanError(f"{self._key(key)}: must be between {lo} and {hi}, not {v}")
        return v

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise PlanError(f"{self._key(unknown[0])}: unknown key (allowed: {', '.join(sorted(self.used))})")


def _kind(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _duration(t: _Table, key: str, default: float) -> float:
    v = t.raw(key)
    return default if v is None else parse_duration(v, t._key(key))


def _target(name: str, data: Any, defaults: dict[str, Any], plan_tz: str) -> Target:
    where = f"targets.{name}"
    if not NAME_RE.match(name):
        raise PlanError(f"{where}: a target name is 1-64 letters, digits, '_' or '-'")
    t = _Table(data, where)
    merged = _Table({**defaults, **t.data}, where)
    seeds = t.get("seeds", list) or []
    ledger = _ledger_selection(t.get("ledger", dict), f"{where}.ledger")
    if not seeds and ledger is None:
        raise PlanError(f"{where}.seeds: at least one seed URL is required (or ledger = {{…}} to scan the "
                        "institution ledger's web sites)")
    seeds = tuple(parse_seed(s, f"{where}.seeds[{i}]") for i, s in enumerate(seeds))
    cron = t.get("cron", str)
    every = t.raw("every")
    if (cron is None) == (every is None):
        raise PlanError(f"{where}: give exactly one of cron = \"m h dom mon dow\" or every = \"6h\"")
    tz_name = t.get("timezone", str, plan_tz)
    timezone(tz_name, f"{where}.timezone")
    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz_name))
        except ValueError as e:
            raise PlanError(f"{where}.cron: bad cron expression {cron!r}: {e} "
                            "(five fields: minute hour day-of-month month day-of-week)") from None
    every_s = parse_duration(every, f"{where}.every") if every is not None else None
    render = merged.get("render", str, "static")
    if render not in RENDER_MODES:
        raise PlanError(f"{where}.render: must be one of {', '.join(RENDER_MODES)}, not {render!r}")
    target = Target(
        name=name, seeds=seeds, cron=cron, every=every_s, timezone=tz_name, render=render,
        depth=merged.int("depth", 3, 0, 100), max_pages=merged.int("max_pages", 500, 1, 1_000_000),
        concurrency=merged.int("concurrency", 16, 1, 256),
        district=merged.get("district", str) or (ledger.district[0] if ledger and len(ledger.district) == 1 else None),
        timeout=_duration(merged, "timeout", 2 * 3600), ledger=ledger,
    )
    for key in ("render", "depth", "max_pages", "concurrency", "district", "timeout"):
        t.used.add(key)
    t.done()
    return target


def _ledger_selection(data: Any, where: str) -> LedgerSelection | None:
    if data is None:
        return None
    from ledger.records import STATUS_OF

    t = _Table(data, where)

    def strings(key: str) -> tuple[str, ...]:
        v = t.get(key, (str, list), [])
        v = [v] if isinstance(v, str) else v
        if not all(isinstance(x, str) and x.strip() for x in v):
            raise PlanError(f"{where}.{key}: expected a string or a list of strings")
        return tuple(x.strip() for x in v)

    districts = strings("district")
    statuses = []
    for raw in strings("status"):
        if raw not in STATUS_OF:
            raise PlanError(f"{where}.status: unknown status {raw!r} (approved/白名单, pending/待审批, "
                            "blacklisted/黑名单, revoked/已吊销, cancelled/已注销)")
        statuses.append(STATUS_OF[raw])
    typ = t.get("type", str)
    types = {"subject": "subject", "学科类": "subject", "non_subject": "non_subject", "非学科类": "non_subject"}
    if typ is not None and typ not in types:
        raise PlanError(f"{where}.type: must be subject/学科类 or non_subject/非学科类, not {typ!r}")
    t.done()
    return LedgerSelection(district=districts, status=tuple(dict.fromkeys(statuses)),
                           type=types[typ] if typ else None)


def target_seeds(plan: Plan, t: Target) -> tuple[str, ...]:
    """The seeds of one run of ``t``: its own, plus — for a ``ledger`` target — every web site of the
    institutions the ledger selects *now* (``机构名=URL``), so institutions imported since the last
    run are in the next one. Raises ``PlanError`` when there is nothing to scan."""
    return store_target_seeds(plan.store, t)


def store_target_seeds(location: str | Path, t: Target) -> tuple[str, ...]:
    """``target_seeds`` with the ledger of the store at ``location`` (a queue worker has no plan)."""
    seeds = list(t.seeds)
    if t.ledger is not None:
        from store import Store

        with Store(location) as store:
            found = store.ledger_seeds(district=t.ledger.district, status=t.ledger.status, type=t.ledger.type)
        seeds += [f"{name.replace('=', '＝')}={url}" for name, url, _ in found]
    if not seeds:
        raise PlanError(f"targets.{t.name}.ledger: no institution with a web site in the ledger matches "
                        f"{t.ledger.describe() if t.ledger else 'the target'} (import one with `jianfu "
                        "institutions import`)")
    return tuple(dict.fromkeys(seeds))


def _alerts(data: Any) -> Alerts:
    a = _Table(data, "alerts")
    email = webhook = None
    if (raw := a.get("email", dict)) is not None:
        e = _Table(raw, "alerts.email")
        to = e.get("to", (list, str))
        to = (to,) if isinstance(to, str) else tuple(to or ())
        if not to or not all(isinstance(x, str) and "@" in x for x in to):
            raise PlanError("alerts.email.to: at least one e-mail address is required")
        host = e.get("host", str)
        if not host:
            raise PlanError("alerts.email.host: the SMTP server's host name is required")
        username, password_env = e.get("username", str), e.get("password_env", str)
        if username and not password_env:
            raise PlanError("alerts.email.password_env: required with username: the name of the environment "
                            "variable holding the SMTP password (e.g. password_env = \"JIANFU_SMTP_PASSWORD\")")
        if password_env and not username:
            raise PlanError("alerts.email.username: required with password_env (the SMTP login name)")
        email = EmailChannel(host=host, port=e.int("port", 25, 1, 65535),
                             sender=e.get("from", str, "jianfu@localhost"), to=to,
                             starttls=e.get("starttls", bool, False), ssl=e.get("ssl", bool, False),
                             username=username, password_env=password_env,
                             timeout=_duration(e, "timeout", 10.0))
        e.done()
    if (raw := a.get("webhook", dict)) is not None:
        w = _Table(raw, "alerts.webhook")
        url = w.get("url", str)
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise PlanError(f"alerts.webhook.url: an http(s) URL is required, not {url!r}")
        headers = w.get("headers", dict, {})
        if not all(isinstance(v, str) for v in headers.values()):
            raise PlanError("alerts.webhook.headers: header values must be strings")
        webhook = WebhookChannel(url=url, headers=tuple(headers.items()), timeout=_duration(w, "timeout", 10.0))
        w.done()
    alerts = Alerts(email=email, webhook=webhook, max_attempts=a.int("max_attempts", 8, 1, 100),
                    backoff=_duration(a, "backoff", 30.0), backoff_max=_duration(a, "backoff_max", 3600.0))
    a.done()
    return alerts


def load_plan(path: str | Path) -> Plan:
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PlanError(f"cannot read plan {path}: {e.strerror or e}") from None
    return parse_plan(text, path)


def parse_plan(text: str, path: Path) -> Plan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{path.name}: not valid TOML: {e}") from None
    try:
        top = _Table(data, "")
        tz_name = top.get("timezone", str, DEFAULT_TZ)
        timezone(tz_name, "timezone")
        store = top.get("store", str)
        if not store:
            raise PlanError("store: the store directory is required (store = \"var/store\")")
        store_dir, default_jobstore = _store_location(store, path)
        jobstore = top.get("jobstore", str) or default_jobstore
        if "://" not in jobstore:
            raise PlanError(f"jobstore: expected an SQLAlchemy URL (sqlite:///…, postgresql://…), not {jobstore!r}")
        defaults = top.get("defaults", dict, {})
        allowed = {"render", "depth", "max_pages", "concurrency", "district", "timeout"}
        if bad := sorted(set(defaults) - allowed):
            raise PlanError(f"defaults.{bad[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
        targets_raw = top.get("targets", dict, {})
        targets = {name: _target(name, raw, defaults, tz_name) for name, raw in targets_raw.items()}
        plan = Plan(path=path, store=store_dir, jobstore_url=jobstore, timezone=tz_name,
                    misfire_grace=_duration(top, "misfire_grace", 86400.0), tick=_duration(top, "tick", 10.0),
                    targets=targets, alerts=_alerts(top.get("alerts", dict, {})), broker=_broker(top))
        top.done()
        return plan
    except PlanError as e:
        raise PlanError(f"{path.name}: {e}") from None


def _store_location(store: str, path: Path) -> tuple[Path | str, str]:
    """The plan's store (a directory relative to the plan, or a PostgreSQL URL) and the default
    APScheduler job store URL (the same database)."""
    from store.backends import is_database_url, split_location

    if not is_database_url(store):
        store_dir = (path.parent / store).resolve()
        return store_dir, f"sqlite:///{store_dir / 'jianfu.sqlite3'}"
    try:
        conninfo, _ = split_location(store)
    except ValueError as e:
        raise PlanError(f"store: {e}") from None
    return store, "postgresql+psycopg://" + conninfo.split("://", 1)[1]


def _broker(top: Any) -> str | None:
    broker = top.get("broker", str)
    if broker and urlsplit(broker).scheme not in ("redis", "rediss"):
        raise PlanError(f"broker: expected a Redis URL (redis://host:6379/0), not {broker!r}")
    return broker or None


def target_toml(t: Target) -> str:
    """A ``[targets.NAME]`` table for appending to a plan file (``jianfu schedule add``)."""
    q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731 - a JSON string is a TOML basic string
    lines = [f"\n[targets.{t.name}]", f"seeds = [{', '.join(q(s) for s in t.seeds)}]"]
    lines.append(f"cron = {q(t.cron)}" if t.cron else f"every = {q(_fmt_seconds(t.every or 0))}")
    if t.timezone != DEFAULT_TZ:
        lines.append(f"timezone = {q(t.timezone)}")
    lines += [f"render = {q(t.render)}", f"depth = {t.depth}", f"max_pages = {t.max_pages}"]
    if t.concurrency != 16:
        lines.append(f"concurrency = {t.concurrency}")
    if t.district:
        lines.append(f"district = {q(t.district)}")
    if t.timeout != 2 * 3600:
        lines.append(f"timeout = {q(_fmt_seconds(t.timeout))}")
    return "\n".join(lines) + "\n"


def fingerprint(plan: Plan) -> str:
    return hashlib.sha256(plan.path.read_bytes()).hexdigest()[:16]
