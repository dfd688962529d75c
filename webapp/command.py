"""``jianfu serve`` (the web app under waitress), ``jianfu users add|list|disable`` and
``jianfu audit verify|export``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from store.backends import is_database_url

ROLE_CHOICES = ("investigator", "supervisor", "admin")  # webapp.models.ROLES


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="serve the investigators' web app (Chinese) over HTTP",
                       description="The web app: log in, cases, search, review, evidence. Applies its "
                                   "database migrations on start.")
    s.add_argument("--store", required=True, help="store directory")
    s.add_argument("--es", metavar="URL", default=os.environ.get("JIANFU_ES_URL"),
                   help="search Elasticsearch at URL (default: the store's SQLite index; env JIANFU_ES_URL)")
    s.add_argument("--es-index", default=os.environ.get("JIANFU_ES_INDEX"))
    s.add_argument("--plan", default=os.environ.get("JIANFU_PLAN"),
                   help="scan plan file for the 扫描 page (default: <store>/plans.toml)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    s.set_defaults(func=run_serve)

    u = sub.add_parser("users", help="web app accounts: add, list, disable")
    us = u.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = us.add_parser("add", help="add an account (password from stdin when it is not a terminal)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLE_CHOICES)
    a.add_argument("--district", action="append", default=[], metavar="D", help="a district it may see (repeat)")
    a.add_argument("--store", required=True)
    a.add_argument("--update", action="store_true", help="change an existing account's role, districts and password")
    a.set_defaults(func=run_users_add)
    ls = us.add_parser("list", help="list accounts")
    ls.add_argument("--store", required=True)
    ls.set_defaults(func=run_users_list)
    d = us.add_parser("disable", help="disable an account (it can no longer log in)")
    d.add_argument("name")
    d.add_argument("--store", required=True)
    d.set_defaults(func=run_users_disable)

    au = sub.add_parser("audit", help="the web app's hash-chained audit log")
    aus = au.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = aus.add_parser("verify", help="check that the audit chain is unbroken (exit 1 if not)")
    v.add_argument("--store", required=True)
    v.set_defaults(func=run_audit_verify)


def setup(store: str, *, es: str | None = None, es_index: str | None = None, plan: str | None = None,
          migrate: bool = True) -> None:
    """Configure Django for this store and bring its tables up to date."""
    from jianfu.cli import CommandError
    from store.backends import store_exists

    if not store_exists(store):
        raise CommandError(f"no jianfu store at {store} (run `jianfu scan ... --store {store}` first)")
    os.environ["JIANFU_STORE"] = store if is_database_url(store) else str(Path(store).resolve())
    for key, value in (("JIANFU_ES_URL", es), ("JIANFU_ES_INDEX", es_index),
                       ("JIANFU_PLAN", str(Path(plan).resolve()) if plan else None)):
        if value:
            os.environ[key] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    import django
    from django.core.management import call_command
    from django.db.utils import OperationalError

    django.setup()
    if migrate:
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except OperationalError as e:
            raise CommandError(f"cannot open the web app database: {e}") from e


def run_serve(args: argparse.Namespace) -> int:
    if "JIANFU_WEB_HOSTS" not in os.environ:
        wildcard = args.host in ("0.0.0.0", "::", "")
        os.environ["JIANFU_WEB_HOSTS"] = "*" if wildcard else f"localhost,127.0.0.1,[::1],{args.host}"
    es, es_index = args.es or os.environ.get("JIANFU_ES_URL"), args.es_index
    if not es and is_database_url(args.store):  # a PostgreSQL store has no embedded search index
        from jianfu.cli import CommandError
        from search.indexer import configured_es
        from store import Store, StoreError

        try:
            with Store(args.store, read_only=True) as st:
                es, recorded_index = configured_es(st)
        except StoreError as e:
            raise CommandError(str(e)) from None
        es_index = es_index or recorded_index
        if not es:
            raise CommandError("a PostgreSQL store is searched in Elasticsearch: none is configured "
                               "(jianfu serve --es URL, jianfu index --es URL, or JIANFU_ES_URL)")
    setup(args.store, es=es, es_index=es_index, plan=args.plan)
    from waitress import serve

    from webapp.wsgi import application

    print(f"jianfu 网页端已启动：http://{args.host}:{args.port}/ （按 Ctrl+C 停止）", file=sys.stderr, flush=True)
    serve(application, host=args.host, port=args.port, threads=args.threads, ident="jianfu",
          clear_untrusted_proxy_headers=True, channel_timeout=120)
    return 0


def _password(name: str) -> str:
    from jianfu.cli import CommandError

    if sys.stdin.isatty():
        pw = getpass.getpass(f"{name} 的密码: ")
        if pw != getpass.getpass("再输入一次: "):
            raise CommandError("two passwords differ")
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        raise CommandError("empty password")
    return pw


def run_users_add(args: argparse.Namespace) -> int:
    setup(args.store)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from jianfu.cli import CommandError
    from webapp.users import apply_role

    User = get_user_model()
    existing = User.objects.filter(username=args.name).first()
    if existing and not args.update:
        raise CommandError(f"user {args.name!r} already exists (use --update to change it)")
    if not existing and not args.name.strip():
        raise CommandError("empty user name")
    if args.role != "admin" and not args.district:
        raise CommandError(f"a {args.role} needs at least one --district")
    pw = _password(args.name)
    user = existing or User(username=args.name)
    try:
        validate_password(pw, user)
    except ValidationError as e:
        raise CommandError("password refused: " + " ".join(e.messages)) from None
    with transaction.atomic():
        user._changed_by = "cli:" + getpass.getuser()
        user.set_password(pw)
        user.is_active = True
        user.save()
        apply_role(user, args.role, args.district, changed_by=user._changed_by)
    print(f"{'updated' if existing else 'added'} {args.name}: {args.role}, districts "
          f"{', '.join(args.district) or 'all'}")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    setup(args.store)
    from django.contrib.auth import get_user_model

    from webapp import access

    rows = []
    for u in get_user_model().objects.order_by("username"):
        d = access.districts(u)
        rows.append((u.username, access.role(u), "all" if d is None else ",".join(d),
                     "active" if u.is_active else "disabled",
                     u.last_login.isoformat(timespec="seconds") if u.last_login else "-"))
    print(f"{'name':<20} {'role':<13} {'districts':<24} {'state':<9} last login")
    for r in rows:
        print(f"{r[0]:<20} {r[1]:<13} {r[2]:<24} {r[3]:<9} {r[4]}")
    print(f"{len(rows)} user(s)")
    return 0


def run_users_disable(args: argparse.Namespace) -> int:
    setup(args.store)
    from django.contrib.auth import get_user_model

    from jianfu.cli import CommandError

    user = get_user_model().objects.filter(username=args.name).first()
    if user is None:
        raise CommandError(f"no user {args.name!r}")
    user._changed_by = "cli:" + getpass.getuser()
    user.is_active = False
    user.save()
    print(f"disabled {args.name}")
    return 0


def run_audit_verify(args: argparse.Namespace) -> int:
    setup(args.store)
    from webapp import audit

    v = audit.verify()
    if v.ok:
        print(f"审计日志完整：{v.entries} 条记录，哈希链无断裂")
        return 0
    print(f"审计日志已被篡改：{v.problem}", file=sys.stderr)
    return 1
