"""The store's files: content-addressed blobs (images, screenshots) and WARC archives.

For an SQLite store they sit beside the database file; for a PostgreSQL store in a directory every
worker mounts (NFS, CephFS, …) at the same path, so any machine can read what another captured
(evidence export included). Writes are atomic (a uniquely named temporary file, then a rename),
so two workers storing the same blob at once cannot leave a half-written file; WARC files are
named by scan id and never shared between writers.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


class FileArea:
    def __init__(self, root: Path, *, create: bool = True) -> None:
        """``create=False``: a read-only store's files, nothing is made."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "blobs").mkdir(exist_ok=True)

    @property
    def warc_dir(self) -> Path:
        return self.root / "warc"

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest
