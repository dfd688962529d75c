"""The Elasticsearch backend (official client, elasticsearch>=8.19,<9).

Layout on the cluster, for an alias ``A`` (default ``jianfu-findings``):

- index template ``A-template`` for ``A-v*``: settings and a strict mapping (``_meta`` carries the
  mapping version and the analyzer);
- concrete indices ``A-v<mapping version>-<UTC stamp>``;
- alias ``A`` (read: searches, Kibana data view) and alias ``A-write`` (the drain writes here).

A rebuild (``jianfu index``) creates a new index, moves ``A-write`` to it first (so findings that
change during the rebuild land in the new index), bulk-copies every finding from the store with
``op_type=create`` (never overwriting a newer document the drain wrote), then swaps ``A`` in one
atomic alias update and deletes the old index. A mapping change is a rebuild, never a loss: the
store is the source of truth.

Chinese: the node Maven Central publishes has no analysis-common, so text fields use the
``standard`` analyzer, which cuts CJK into single characters; words are matched as phrases
(``match_phrase``: the characters in order), which is substring search like the SQLite backend.
When the cluster has a segmenting analyzer (``ik_max_word``, ``smartcn``, or ``cjk`` from
analysis-common), a ``.words`` sub-field uses it and adds relevance, never changing what matches.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import elastic_transport
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError

from search.base import (
    FACET_SIZE,
    SEARCH_FIELDS,
    BackendUnavailable,
    Hit,
    IndexReport,
    MappingConflict,
    ParsedQuery,
    QuerySyntaxError,
    SearchError,
    SearchQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
    highlight,
    result_doc,
)

MAPPING_VERSION = 2
DEFAULT_ALIAS = "jianfu-findings"
BULK_DOCS = 1000

_SORTS: dict[str, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"id": "asc"}],
    "newest": [{"last_seen_at": "desc"}, {"id": "asc"}],
    "oldest": [{"first_seen_at": "asc"}, {"id": "asc"}],
    "severity": [{"severity_rank": "desc"}, {"last_seen_at": "desc"}, {"id": "asc"}],
    "score": [{"score": "desc"}, {"id": "asc"}],
}

# Preferred segmenting analyzers: (plugin or module that provides it, index analyzer, search analyzer)
_ANALYZERS = (("analysis-ik", "ik_max_word", "ik_smart"), ("analysis-smartcn", "smartcn", "smartcn"),
              ("analysis-common", "cjk", "cjk"))


def pick_analyzer(components: Iterable[str]) -> tuple[str, str] | None:
    have = set(components)
    for comp, index_an, search_an in _ANALYZERS:
        if comp in have:
            return index_an, search_an
    return None


def mappings(analyzer: tuple[str, str] | None) -> dict[str, Any]:
    def text(keyword: bool = False, phrases: bool = False) -> dict[str, Any]:
        f: dict[str, Any] = {"type": "text", "analyzer": "standard"}
        if phrases:  # two-character shingles in a hidden field: fast match_phrase on CJK characters
            f["index_phrases"] = True
        sub: dict[str, Any] = {}
        if keyword:
            sub["keyword"] = {"type": "keyword", "ignore_above": 256}
        if analyzer:
            sub["words"] = {"type": "text", "analyzer": analyzer[0], "search_analyzer": analyzer[1]}
        if sub:
            f["fields"] = sub
        return f

    kw = {"type": "keyword"}
    facet = {"type": "keyword", "eager_global_ordinals": True}
    date = {"type": "date"}
    return {
        "dynamic": "strict",
        "_meta": {"jianfu_mapping_version": MAPPING_VERSION, "analyzer": analyzer[0] if analyzer else "standard"},
        "properties": {
            "@timestamp": date, "first_seen_at": date, "last_seen_at": date,
            "id": kw, "category": facet, "rule_id": facet, "institution": facet, "district": facet,
            "severity": facet, "status": facet, "source": facet, "url": kw, "image_url": kw, "image_sha256": kw,
            "first_scan_id": kw, "last_scan_id": kw,
            "severity_rank": {"type": "byte"}, "score": {"type": "double"},
            "start": {"type": "integer"}, "end": {"type": "integer"},
            "text": text(keyword=True, phrases=True), "context": text(phrases=True), "page_text": text(), "page_title": text(),
            "basis": text(keyword=True), "explanation": text(),
        },
    }


FIELDS = frozenset(mappings(None)["properties"])


def check_url(url: str) -> str:
    p = urlparse(url or "")
    if p.scheme not in ("http", "https") or not p.hostname:
        raise SearchError(f"Elasticsearch URL must look like http://127.0.0.1:9200, not {url!r}")
    try:
        p.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise SearchError(f"bad port in Elasticsearch URL {url!r}") from None
    return url.rstrip("/")


class ElasticBackend:
    name = "elasticsearch"

    def __init__(self, url: str, alias: str | None = None, *, timeout: float = 10.0, connect: bool = True) -> None:
        self.url = check_url(url)
        self.alias = alias or DEFAULT_ALIAS
        if self.alias != self.alias.lower() or any(c in self.alias for c in ' "*\\<|,>/?#:'):
            raise SearchError(f"bad index name {self.alias!r} (lowercase, no spaces or * , / ? # :)")
        self.write_alias = f"{self.alias}-write"
        self.template = f"{self.alias}-template"
        self.timeout = timeout
        self.es = Elasticsearch(self.url, request_timeout=timeout, max_retries=0, retry_on_timeout=False)
        self._write_ready = False
        self._read_checked_until = 0.0
        self._analyzer: tuple[str, str] | None | bool = False  # False: not detected yet
        if connect:
            self.health()

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except UnsupportedProductError:
            raise BackendUnavailable(f"{self.url} is not Elasticsearch (it answered without the "
                                     "X-Elastic-Product header)") from None
        except elastic_transport.ConnectionTimeout:
            raise BackendUnavailable(f"Elasticsearch at {self.url} timed out after {self.timeout:g}s") from None
        except elastic_transport.ConnectionError as e:
            reason = str(e.message if hasattr(e, "message") else e)
            short = "connection refused" if "refused" in reason.lower() else reason.split("\n")[0][:200]
            raise BackendUnavailable(f"cannot reach Elasticsearch at {self.url}: {short}") from None
        except ApiError as e:
            headers = getattr(e.meta, "headers", {}) or {}
            if e.meta.status >= 400 and not headers.get("x-elastic-product"):
                raise BackendUnavailable(f"{self.url} is not Elasticsearch (HTTP {e.meta.status} without the "
                                         "X-Elastic-Product header)") from None
            raise
        except elastic_transport.TransportError as e:
            raise BackendUnavailable(f"Elasticsearch at {self.url}: {type(e).__name__}: {str(e)[:200]}") from None

    @staticmethod
    def _reason(e: ApiError) -> str:
        info = e.info if isinstance(e.info, dict) else {}
        err = info.get("error") if isinstance(info.get("error"), dict) else {}
        return f"{err.get('type', e.error)}: {err.get('reason', e.message)}"[:300]

    def health(self) -> dict[str, Any]:
        try:
            h = self._call(self.es.cluster.health)
        except ApiError as e:
            raise BackendUnavailable(f"Elasticsearch at {self.url} is not healthy: {self._reason(e)}") from None
        body = dict(h.body) if hasattr(h, "body") else dict(h)
        if body.get("status") not in ("green", "yellow"):
            raise BackendUnavailable(f"Elasticsearch at {self.url} is {body.get('status')}")
        return body

    def analyzer(self) -> tuple[str, str] | None:
        if self._analyzer is False:
            try:
                info = self._call(self.es.nodes.info, node_id="_local", metric="plugins")
                comps: list[str] = []
                for node in info["nodes"].values():
                    comps += [p["name"] for p in node.get("plugins", [])]
                    comps += [m["name"] for m in node.get("modules", [])]
                self._analyzer = pick_analyzer(comps)
            except ApiError:
                self._analyzer = None
        return self._analyzer  # type: ignore[return-value]

    def _alias_indices(self, name: str) -> list[str]:
        try:
            return sorted(self._call(self.es.indices.get_alias, name=name).body)
        except ApiError as e:
            if e.meta.status == 404:
                return []
            raise SearchError(f"cannot read alias {name}: {self._reason(e)}") from None

    def _is_concrete(self, name: str) -> bool:
        try:
            r = self._call(self.es.indices.get, index=name, allow_no_indices=True, expand_wildcards="none")
        except ApiError as e:
            if e.meta.status == 404:
                return False
            raise SearchError(f"cannot read index {name}: {self._reason(e)}") from None
        return name in r.body

    def _version(self, index: str) -> Any:
        try:
            m = self._call(self.es.indices.get_mapping, index=index).body
        except ApiError as e:
            raise SearchError(f"cannot read mapping of {index}: {self._reason(e)}") from None
        return ((m.get(index, {}).get("mappings", {}).get("_meta") or {}).get("jianfu_mapping_version"))

    def _check_versions(self, name: str, indices: list[str]) -> None:
        for idx in indices:
            v = self._version(idx)
            if v != MAPPING_VERSION:
                raise MappingConflict(
                    f"index {idx} behind {name} has mapping version {v}, this jianfu needs {MAPPING_VERSION}: "
                    f"rebuild it with `jianfu index --store DIR --es {self.url}`")

    def _put_template(self) -> None:
        an = self.analyzer()
        try:
            self._call(self.es.indices.put_index_template, name=self.template,
                       index_patterns=[f"{self.alias}-v*"], priority=500,
                       template={"settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1",
                                              "refresh_interval": "1s"},
                                 "mappings": mappings(an)},
                       meta={"managed_by": "jianfu", "alias": self.alias})
        except ApiError as e:
            raise SearchError(f"cannot install index template {self.template}: {self._reason(e)}") from None

    def _new_index(self, aliases: dict[str, Any] | None = None, bulk_load: bool = False) -> str:
        name = f"{self.alias}-v{MAPPING_VERSION}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
        # while a rebuild loads it: no refreshes, translog fsync in the background (the store is
        # the source of truth; a crash mid-rebuild just means rebuilding again)
        settings = {"refresh_interval": "-1", "translog.durability": "async"} if bulk_load else None
        try:
            self._call(self.es.indices.create, index=name, aliases=aliases, settings=settings,
                       wait_for_active_shards="1")
        except ApiError as e:
            raise SearchError(f"cannot create index {name}: {self._reason(e)}") from None
        return name

    def ensure_writable(self) -> None:
        """Make sure the write alias exists on an index of the current mapping (creating the first
        index when the cluster has none of ours); raises MappingConflict otherwise."""
        if self._write_ready:
            return
        write = self._alias_indices(self.write_alias)
        if write:
            self._check_versions(self.write_alias, write)
        else:
            read = self._alias_indices(self.alias)
            if read or self._is_concrete(self.alias):
                raise MappingConflict(
                    f"{self.alias} exists without its write alias {self.write_alias} (made by an older jianfu "
                    f"or by hand): rebuild it with `jianfu index --store DIR --es {self.url} --replace`")
            self._put_template()
            self._new_index({self.alias: {}, self.write_alias: {"is_write_index": True}})
        self._write_ready = True

    def _read_target(self) -> str:
        if time.monotonic() < self._read_checked_until:
            return self.alias
        read = self._alias_indices(self.alias)
        if not read:
            if self._is_concrete(self.alias):
                raise MappingConflict(
                    f"{self.alias} is a plain index, not a jianfu alias (an older layout): rebuild it with "
                    f"`jianfu index --store DIR --es {self.url} --replace`")
            raise SearchError(f"no search index {self.alias} at {self.url} yet: build it with "
                              f"`jianfu index --store DIR --es {self.url}`")
        self._check_versions(self.alias, read)
        self._read_checked_until = time.monotonic() + 10.0  # re-checked every 10 s, not per search
        return self.alias

    # -- writing -------------------------------------------------------------------------------
    def _bulk(self, ops: list[dict[str, Any]], refresh: bool) -> list[dict[str, Any]]:
        try:
            r = self._call(self.es.bulk, operations=ops, index=self.write_alias, require_alias=True,
                           refresh="wait_for" if refresh else None)
        except ApiError as e:
            raise SearchError(f"bulk request refused: {self._reason(e)}") from None
        return r["items"]

    def index(self, docs: Sequence[dict[str, Any]], *, refresh: bool = False, op_type: str = "index") -> IndexReport:
        rep = IndexReport()
        if not docs:
            return rep
        self.ensure_writable()
        for i in range(0, len(docs), BULK_DOCS):
            chunk = docs[i:i + BULK_DOCS]
            ops: list[dict[str, Any]] = []
            for d in chunk:
                ops.append({op_type: {"_id": d["id"]}})
                ops.append({k: v for k, v in d.items() if k in FIELDS})
            for item in self._bulk(ops, refresh):
                (res,) = item.values()
                if 200 <= res["status"] < 300:
                    rep.indexed.append(res["_id"])
                elif op_type == "create" and res["status"] == 409:
                    rep.indexed.append(res["_id"])  # a newer document is already there
                else:
                    err = res.get("error") or {}
                    rep.failed[res["_id"]] = f"{err.get('type', 'error')}: {err.get('reason', res['status'])}"[:300]
        return rep

    def delete(self, ids: Sequence[str], *, refresh: bool = False) -> IndexReport:
        rep = IndexReport()
        if not ids:
            return rep
        self.ensure_writable()
        for item in self._bulk([{"delete": {"_id": i}} for i in ids], refresh):
            res = item["delete"]
            if 200 <= res["status"] < 300 or res["status"] == 404:
                rep.deleted.append(res["_id"])
            else:
                rep.failed[res["_id"]] = str((res.get("error") or {}).get("reason", res["status"]))[:300]
        return rep

    def refresh(self) -> None:
        try:
            self._call(self.es.indices.refresh, index=self.alias)
        except ApiError as e:
            raise SearchError(f"refresh failed: {self._reason(e)}") from None

    def rebuild(self, docs: Iterable[dict[str, Any]], *, replace: bool = False,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Build a fresh index from ``docs`` and swap the aliases to it (see the module doc)."""
        self.health()
        old_read = self._alias_indices(self.alias)
        squatter = not old_read and self._is_concrete(self.alias)
        if squatter and not replace:
            raise MappingConflict(f"{self.alias} is a plain index, not a jianfu alias (an older layout); "
                                  "add --replace to rebuild it from the store and replace it")
        old_write = self._alias_indices(self.write_alias)
        self._put_template()
        new = self._new_index(bulk_load=True)
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.write_alias}} for i in old_write]
        actions.append({"add": {"index": new, "alias": self.write_alias, "is_write_index": True}})
        self._aliases(actions)
        self._write_ready = True
        n = 0
        try:
            # two bulk requests in flight: the node indexes one while Python serialises the next
            with ThreadPoolExecutor(max_workers=2) as pool:
                pending: list[Future[int]] = []
                batch: list[dict[str, Any]] = []
                for d in docs:
                    batch.append(d)
                    if len(batch) >= BULK_DOCS:
                        pending.append(pool.submit(self._create_all, batch))
                        batch = []
                        while len(pending) >= 2:
                            n += pending.pop(0).result()
                            if progress:
                                progress(n)
                if batch:
                    pending.append(pool.submit(self._create_all, batch))
                for f in pending:
                    n += f.result()
                if progress:
                    progress(n)
            self._call(self.es.indices.put_settings, index=new,
                       settings={"refresh_interval": "1s", "translog.durability": "request"})
            self._call(self.es.indices.refresh, index=new)
        except BaseException:
            # no partial result: put the write alias back and drop the new index
            back = [{"remove": {"index": new, "alias": self.write_alias}}]
            back += [{"add": {"index": i, "alias": self.write_alias, "is_write_index": True}} for i in old_write]
            try:
                self._aliases(back)
                self._call(self.es.indices.delete, index=new)
            except Exception:
                pass
            self._write_ready = False
            raise
        swap: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old_read]
        if squatter:
            swap.append({"remove_index": {"index": self.alias}})
        swap.append({"add": {"index": new, "alias": self.alias}})
        self._aliases(swap)
        self._read_checked_until = 0.0
        dropped = []
        for i in sorted(set(old_read) | set(old_write)):
            if i != new:
                try:
                    self._call(self.es.indices.delete, index=i)
                    dropped.append(i)
                except ApiError:
                    pass
        return {"index": new, "alias": self.alias, "documents": n, "replaced": dropped + ([self.alias] if squatter else [])}

    def _create_all(self, batch: list[dict[str, Any]]) -> int:
        rep = self.index(batch, op_type="create")
        if rep.failed:
            fid, err = next(iter(rep.failed.items()))
            raise SearchError(f"{len(rep.failed)} finding(s) could not be indexed (first: {fid}: {err})")
        return len(rep.indexed)

    def _aliases(self, actions: list[dict[str, Any]]) -> None:
        try:
            self._call(self.es.indices.update_aliases, actions=actions)
        except ApiError as e:
            raise SearchError(f"alias update failed: {self._reason(e)}") from None

    def drop(self) -> None:
        """Delete this alias's indices and template (tests, `jianfu index --drop`)."""
        for name in (self.alias, self.write_alias):
            for i in self._alias_indices(name):
                try:
                    self._call(self.es.indices.delete, index=i)
                except ApiError:
                    pass
        try:
            self._call(self.es.indices.delete_index_template, name=self.template)
        except ApiError:
            pass
        self._write_ready = False
        self._read_checked_until = 0.0

    # -- reading -------------------------------------------------------------------------------
    def _term_query(self, t: str) -> dict[str, Any]:
        return {"multi_match": {"query": t, "type": "phrase", "fields": list(SEARCH_FIELDS)}}

    def build_query(self, q: SearchQuery, parsed: ParsedQuery) -> dict[str, Any]:
        must: list[dict[str, Any]] = []
        for group in parsed.groups:
            if len(group) == 1:
                must.append(self._term_query(group[0]))
            else:
                must.append({"bool": {"should": [self._term_query(t) for t in group], "minimum_should_match": 1}})
        must_not = [self._term_query(t) for t in parsed.negatives]
        flt: list[dict[str, Any]] = [{"terms": {k: list(v)}} for k, v in q.filters.items()]
        if q.since or q.until:
            rng: dict[str, str] = {}
            if q.since:
                rng["gte"] = q.since
            if q.until:
                rng["lt"] = q.until
            flt.append({"range": {"last_seen_at": rng}})
        should: list[dict[str, Any]] = []
        if self.analyzer() and parsed.positive_terms:
            words = [f"{f}.words" for f in SEARCH_FIELDS]
            should = [{"multi_match": {"query": t, "fields": words}} for t in parsed.positive_terms]
        body: dict[str, Any] = {"must": must or [{"match_all": {}}]}
        if must_not:
            body["must_not"] = must_not
        if flt:
            body["filter"] = flt
        if should:
            body["should"] = should
        return {"bool": body}

    def _search(self, **kw: Any) -> dict[str, Any]:
        try:
            return self._call(self.es.search, **kw).body
        except ApiError as e:
            raise SearchError(f"Elasticsearch refused the search: {self._reason(e)}") from None

    def count(self, query: SearchQuery) -> int:
        parsed = query.validate()
        target = self._read_target()
        try:
            return int(self._call(self.es.count, index=target, query=self.build_query(query, parsed))["count"])
        except ApiError as e:
            raise SearchError(f"Elasticsearch refused the count: {self._reason(e)}") from None

    def search(self, query: SearchQuery) -> SearchResult:
        t0 = time.perf_counter()
        parsed = query.validate()
        after = decode_cursor(query.after, query.sort) if query.after else None
        if after is not None and len(after) != len(_SORTS[query.sort]):
            raise QuerySyntaxError("invalid --after cursor (copy it from the previous page)")
        target = self._read_target()
        kw: dict[str, Any] = {
            "index": target, "query": self.build_query(query, parsed), "size": query.size,
            "sort": _SORTS[query.sort], "track_total_hits": True, "source_excludes": ["page_text"],
        }
        if after is not None:
            kw["search_after"] = after
        if query.facets:
            kw["aggs"] = {f: {"terms": {"field": f, "size": FACET_SIZE,
                                        "order": [{"_count": "desc"}, {"_key": "asc"}]}} for f in query.facets}
        body = self._search(**kw)
        hits = []
        terms = parsed.positive_terms if query.highlight else []
        for h in body["hits"]["hits"]:
            # highlighted here, not by the node: the same marks as the SQLite backend, and the
            # node's highlighter cannot see through index_phrases (the fast phrase field)
            hls = {f: [m] for f in SEARCH_FIELDS if (m := highlight(h["_source"].get(f), terms))}
            hits.append(Hit(h["_id"], h.get("_score") if query.sort == "relevance" else None,
                            result_doc(h["_source"]), hls))
        facets = {f: [(b["key"], b["doc_count"]) for b in body.get("aggregations", {}).get(f, {}).get("buckets", [])]
                  for f in query.facets}
        raw_hits = body["hits"]["hits"]
        cursor = encode_cursor(query.sort, raw_hits[-1]["sort"]) if query.size and len(raw_hits) == query.size else None
        return SearchResult(body["hits"]["total"]["value"], hits, facets, cursor, (time.perf_counter() - t0) * 1000)

    def _pit_hits(self, query: SearchQuery, sizes: Iterator[int], **request: Any) -> Iterator[dict[str, Any]]:
        """Every hit of ``query`` in pages of the sizes ``sizes`` yields, through one point in time
        with search_after (no 10,000 cap); ``request`` adds to each search (sort, source, …)."""
        parsed = query.validate()
        target = self._read_target()
        q = self.build_query(query, parsed)
        try:
            pit = self._call(self.es.open_point_in_time, index=target, keep_alive="2m")["id"]
        except ApiError as e:
            raise SearchError(f"cannot open a point in time: {self._reason(e)}") from None
        try:
            after = None
            for size in sizes:
                kw: dict[str, Any] = {"pit": {"id": pit, "keep_alive": "2m"}, "query": q, "size": size,
                                      "track_total_hits": False, **request}
                if after is not None:
                    kw["search_after"] = after
                body = self._search(**kw)
                pit = body.get("pit_id", pit)
                hits = body["hits"]["hits"]
                yield from hits
                if len(hits) < size:
                    return
                after = hits[-1]["sort"]
        finally:
            try:
                self.es.close_point_in_time(id=pit)
            except Exception:
                pass

    def export(self, query: SearchQuery, page: int = 2000) -> Iterator[dict[str, Any]]:
        """Every match, streamed through a point in time with search_after (no 10,000 cap)."""
        for h in self._pit_hits(query, itertools.repeat(page), sort=_SORTS[query.sort],
                                source_excludes=["page_text"]):
            yield result_doc(h["_source"])

    def ids(self, query: SearchQuery, limit: int | None = None, page: int = 10_000) -> list[str]:
        """Every matching id (no source, index order), through a point in time with search_after."""
        if limit is None:
            sizes: Iterator[int] = itertools.repeat(page)
        else:
            sizes = (min(page, limit - done) for done in range(0, limit, page))
        return [h["_id"] for h in self._pit_hits(query, sizes, sort=["_shard_doc"], source=False)]

    def close(self) -> None:
        self.es.close()
