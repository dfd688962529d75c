"""``jianfu search`` (find findings, facets, export) and ``jianfu index`` (build or drain the ES index)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from typing import IO, Any

from search.base import (
    DEFAULT_FACETS,
    FACETS,
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    RESULT_FIELDS,
    SORTS,
    SearchError,
    SearchQuery,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search findings (SQLite by default, Elasticsearch with --es)",
                       description='Words must all occur (substring of the matched text or its context); '
                                   '"a phrase", a OR b, -excluded. Filters are exact.')
    p.add_argument("query", nargs="?", default="", help='e.g. "幼小衔接" or "奥数 OR 竞赛 -免费"')
    p.add_argument("--store", required=True)
    p.add_argument("--es", metavar="URL", default=os.environ.get("JIANFU_ES_URL"),
                   help="search Elasticsearch at URL instead of the store's SQLite index (env JIANFU_ES_URL)")
    p.add_argument("--es-index", default=os.environ.get("JIANFU_ES_INDEX"), help="alias (default jianfu-findings)")
    p.add_argument("--timeout", type=float, default=10.0, help="Elasticsearch request timeout, seconds")
    for name, dest in (("category", "category"), ("rule", "rule_id"), ("institution", "institution"),
                       ("district", "district"), ("severity", "severity"), ("status", "status"),
                       ("source", "source")):
        p.add_argument(f"--{name}", dest=dest, action="append", metavar="VALUE",
                       help=f"only this {name} (repeat or comma-separate for several)")
    p.add_argument("--since", help="last seen on or after (2024-05-01 or ISO time)")
    p.add_argument("--until", help="last seen before")
    p.add_argument("--sort", choices=SORTS, default=None, help="default: relevance with words, newest without")
    p.add_argument("--size", type=int, default=20, help="results per page (max 1000)")
    p.add_argument("--page", type=int, default=1, help="page number (walks with search_after; no 10,000 cap)")
    p.add_argument("--after", metavar="CURSOR", help="the next-page cursor printed by the previous page")
    p.add_argument("--facets", default=",".join(DEFAULT_FACETS),
                   help=f"comma-separated facet fields ({', '.join(FACETS)}), or 'none'")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--export", choices=["csv", "jsonl"], help="stream every match (no row cap) instead of a page")
    p.add_argument("--output", "-o", default="-", help="export file (default stdout)")
    p.set_defaults(func=run_search)

    i = sub.add_parser("index", help="(re)build the Elasticsearch index from a store, or send what is queued")
    i.add_argument("--store", required=True)
    i.add_argument("--es", metavar="URL", default=os.environ.get("JIANFU_ES_URL"), help="env JIANFU_ES_URL")
    i.add_argument("--es-index", default=os.environ.get("JIANFU_ES_INDEX"), help="alias (default jianfu-findings)")
    i.add_argument("--timeout", type=float, default=30.0)
    i.add_argument("--drain", action="store_true",
                   help="only send the findings queued since the last index (no rebuild)")
    i.add_argument("--replace", action="store_true",
                   help="replace a plain index that occupies the alias name (an older layout)")
    i.add_argument("--no-remember", action="store_true",
                   help="do not record the URL in the store (scans index into it as they go when recorded)")
    i.set_defaults(func=run_index)


def _values(items: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in items or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return tuple(out)


def _backend(args: argparse.Namespace, store: Any) -> Any:
    es, es_index = args.es, args.es_index
    if not es and getattr(store, "shared", False):  # a PostgreSQL store has no embedded index
        from jianfu.cli import CommandError
        from search.indexer import configured_es

        es, recorded_index = configured_es(store)
        es_index = es_index or recorded_index
        if not es:
            raise CommandError("a PostgreSQL store is searched in Elasticsearch: none is configured "
                               "(jianfu index --es URL, or JIANFU_ES_URL)")
    if es:
        from search.elastic import ElasticBackend

        return ElasticBackend(es, alias=es_index, timeout=args.timeout)
    from search.sqlite_fts import SqliteBackend

    return SqliteBackend(store)


def build_query(args: argparse.Namespace) -> SearchQuery:
    filters = {k: _values(getattr(args, k)) for k in ("category", "rule_id", "institution", "district",
                                                       "severity", "status", "source")}
    facets = () if args.facets.strip().lower() in ("", "none") else tuple(
        f.strip() for f in args.facets.split(",") if f.strip())
    sort = args.sort or ("relevance" if (args.query or "").strip() else "newest")
    return SearchQuery(text=args.query or "", filters={k: v for k, v in filters.items() if v},
                       since=args.since, until=args.until, sort=sort, size=args.size, after=args.after,
                       facets=facets)


def run_search(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from store.command import open_existing

    if args.page < 1:
        raise CommandError("--page must be 1 or more")
    if args.page > 1 and args.after:
        raise CommandError("give --page or --after, not both")
    query = build_query(args)
    with ExitStack() as stack:
        store = stack.enter_context(open_existing(args.store))
        try:
            backend = _backend(args, store)
            stack.callback(backend.close)
            query.validate()
            if args.export:
                return _export(backend, query, args.export, args.output)
            if args.page > 1:
                walk = SearchQuery(**{**query.__dict__, "facets": (), "highlight": False})
                for _ in range(args.page - 1):
                    r = backend.search(walk)
                    if not r.next_cursor:
                        walk.after = None
                        break
                    walk.after = r.next_cursor
                if walk.after is None:
                    raise CommandError(f"there is no page {args.page}")
                query.after = walk.after
            result = backend.search(query)
        except SearchError as e:
            raise CommandError(str(e)) from None
    if args.format == "json":
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    else:
        _print_result(result, query, args)
    return 0


def _export(backend: Any, query: SearchQuery, fmt: str, output: str) -> int:
    from jianfu.cli import CommandError

    rows = backend.export(query)
    first = next(rows, None)  # errors (bad query, index missing) surface before a file is created
    out: IO[str]
    if output == "-":
        out = sys.stdout
        close = False
    else:
        try:
            out = open(output, "w", encoding="utf-8", newline="")
        except OSError as e:
            raise CommandError(f"cannot write {output}: {e.strerror}") from None
        close = True
    n = 0
    try:
        all_rows: Iterable[dict[str, Any]] = rows if first is None else _chain(first, rows)
        if fmt == "csv":
            w = csv.DictWriter(out, fieldnames=list(RESULT_FIELDS), extrasaction="ignore")
            w.writeheader()
            for r in all_rows:
                w.writerow(r)
                n += 1
        else:
            for r in all_rows:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
                n += 1
    finally:
        if close:
            out.close()
    if output != "-":
        print(f"exported {n} finding(s) to {output}", file=sys.stderr)
    return 0


def _chain(first: dict[str, Any], rest: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    yield first
    yield from rest


def _mark(s: str) -> str:
    if sys.stdout.isatty():
        return s.replace(HIGHLIGHT_PRE, "\x1b[1;31m").replace(HIGHLIGHT_POST, "\x1b[0m")
    return s.replace(HIGHLIGHT_PRE, "«").replace(HIGHLIGHT_POST, "»")


def _print_result(result: Any, query: SearchQuery, args: argparse.Namespace) -> None:
    where = f" for {query.text!r}" if query.text else ""
    print(f"{result.total} finding(s){where} · sort {query.sort} · page {args.page} · {result.took_ms:.0f} ms")
    start = (args.page - 1) * query.size if not args.after else 0
    for n, h in enumerate(result.hits, start + 1):
        d = h.doc
        print(f"{n:>4}. [{d.get('severity')}] {d.get('category')} · {d.get('institution') or '-'} · "
              f"{d.get('district') or '-'} · {d.get('status')} · {str(d.get('last_seen_at') or '')[:10]} · {h.id}")
        print(f"      text:    {_mark((h.highlights.get('text') or [d.get('text') or ''])[0])}")
        ctx = (h.highlights.get("context") or [d.get("context") or ""])[0]
        print(f"      context: {_mark(' '.join(ctx.split()))}")
        print(f"      {d.get('url')}" + (f"  (image {d.get('image_url')})" if d.get("image_url") else ""))
    for f, vals in result.facets.items():
        if vals:
            print(f"{f}: " + " · ".join(f"{v} {c}" for v, c in vals[:12]))
    if result.next_cursor:
        print(f"next page: --after {result.next_cursor}")


def run_index(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from search.elastic import ElasticBackend
    from search.indexer import META_ES_INDEX, META_ES_URL, Indexer, iter_store_docs
    from store.command import open_existing

    if not args.es:
        raise CommandError("give --es URL (or set JIANFU_ES_URL): the SQLite index needs no building")
    with open_existing(args.store) as store:
        try:
            backend = ElasticBackend(args.es, alias=args.es_index, timeout=args.timeout)
        except SearchError as e:
            raise CommandError(str(e)) from None
        try:
            indexer = Indexer(store, backend)
            if args.drain:
                res = indexer.drain(force=True)
                if res.error:
                    raise CommandError(f"{res.sent} sent, {res.pending} still queued: {res.error}")
                print(f"sent {res.sent}, deleted {res.deleted}, {res.pending} queued")
            else:
                # what is queued now is covered by the rebuild; remove exactly those versions after
                snapshot = store.db.execute("SELECT finding_id, version FROM index_outbox").fetchall()
                info = backend.rebuild(iter_store_docs(store.db), replace=args.replace)
                with store.db:
                    store.db.executemany("DELETE FROM index_outbox WHERE finding_id=? AND version=?",
                                         [tuple(r) for r in snapshot])
                res = indexer.drain(force=True)  # whatever changed during the rebuild
                print(f"indexed {info['documents']} finding(s) into {info['index']} (alias {info['alias']})"
                      + (f", replaced {', '.join(info['replaced'])}" if info["replaced"] else "")
                      + (f"; {res.pending} still queued: {res.error}" if res.error else ""))
            if not args.no_remember:
                with store.db:
                    for k, v in ((META_ES_URL, backend.url), (META_ES_INDEX, backend.alias)):
                        store.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                                         "SET value=excluded.value", (k, v))
        except SearchError as e:
            raise CommandError(str(e)) from None
        finally:
            backend.close()
    return 0
