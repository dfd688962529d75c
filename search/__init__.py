"""Search over findings: one interface (``search.base``), two backends.

Owns: the query language and result shapes (``base``), the embedded default index — SQLite FTS5
with one token per character inside the store (``sqlite_fts``) — the Elasticsearch index: template,
versioned index behind an alias, bulk indexing, rebuilds (``elastic``), the durable outbox drain
that sends findings to Elasticsearch after the store has committed them (``indexer``), and the
``jianfu search`` / ``jianfu index`` commands (``command``). See docs/search.md.
"""

from search.base import (
    BackendUnavailable,
    Hit,
    MappingConflict,
    QuerySyntaxError,
    SearchBackend,
    SearchError,
    SearchQuery,
    SearchResult,
)

__all__ = [
    "BackendUnavailable", "Hit", "MappingConflict", "QuerySyntaxError", "SearchBackend", "SearchError",
    "SearchQuery", "SearchResult",
]
