"""``jianfu verify``: check a packet — container, every file's hash and size, nothing added or
removed, the Ed25519 signature, the timestamp token's imprint — and give one verdict that says
exactly what was proven:

- ``VALID``: self-consistent *and* signed by the key pinned with ``--pubkey`` (the issuer's key);
- ``INTACT``: self-consistent (hashes, container, signature with the key inside the packet), but
  that key is not authenticated — anyone can alter a packet and re-sign it with their own key;
- ``INVALID``: a problem was found.

Exit status 0 for VALID and INTACT, 1 for INVALID."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidence import container, signing
from evidence import timestamp as tsa
from evidence.packet import FORMAT, UNSIGNED, signed_message


@dataclass
class Verdict:
    path: str
    ok: bool = True
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    signer: str | None = None          # fingerprint of the key that made a good signature
    pinned: bool = False               # … and it is the key given with --pubkey

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "INVALID"
        return "VALID" if self.pinned else "INTACT"

    def fail(self, msg: str) -> None:
        self.ok = False
        self.problems.append(msg)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "verdict": self.verdict, "valid": self.verdict == "VALID", "intact": self.ok,
                "signer_authenticated": self.ok and self.pinned, "passed": self.passed,
                "problems": self.problems, "notes": self.notes, **self.info}


def verify(path: str | Path, pubkey_pem: bytes | None = None) -> Verdict:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        v = Verdict(str(path))
        v.fail(f"cannot read {path}: {e.strerror or e}")
        return v
    return verify_bytes(data, str(path), pubkey_pem)


def verify_bytes(data: bytes, name: str = "<packet>", pubkey_pem: bytes | None = None) -> Verdict:
    v = Verdict(name)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        v.fail(f"not a readable packet — the ZIP is truncated or damaged ({e})")
        return v
    names = [i.filename for i in infos]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        v.fail(f"ZIP holds the same name more than once: {', '.join(dupes)}")
    contents: dict[str, bytes] = {}
    for info in infos:
        # a canonical packet is STORED: never inflate an entry (a zip bomb), never trust a size
        # larger than the file itself
        if info.compress_type != zipfile.ZIP_STORED:
            v.fail(f"{info.filename}: compressed entry (method {info.compress_type}) — a packet's entries "
                   "are all STORED; not read")
            continue
        if info.file_size > len(data) or info.compress_size > len(data):
            v.fail(f"{info.filename}: claims {info.file_size} bytes, more than the whole packet "
                   f"({len(data)} bytes); not read")
            continue
        try:
            contents[info.filename] = _entry_bytes(data, info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            v.fail(f"{info.filename}: cannot be read from the ZIP — damaged ({e})")

    # 1. the manifest
    mbytes = contents.get("manifest.json")
    if mbytes is None:
        v.fail("manifest.json is missing" + (" (or damaged)" if "manifest.json" in names else ""))
        return v
    try:
        manifest = json.loads(mbytes)
        files = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError) as e:
        v.fail(f"manifest.json is not a valid manifest ({type(e).__name__}: {e})")
        return v
    if manifest.get("format") != FORMAT:
        v.fail(f"manifest.json format is {manifest.get('format')!r}, expected {FORMAT!r}")
    v.info["manifest"] = {"created": manifest.get("created"), "tool": manifest.get("tool"),
                          "exporter": manifest.get("exporter"), "selection": manifest.get("selection"),
                          "files": len(files)}

    # 2. every listed file present with its hash and size; nothing unlisted
    bad = 0
    for p, entry in files.items():
        if p in UNSIGNED:
            v.fail(f"manifest lists {p}, which cannot be listed")
            continue
        if p not in names:
            v.fail(f"{p}: listed in the manifest but missing from the packet (removed)")
            bad += 1
            continue
        if p not in contents:
            bad += 1
            continue
        got = contents[p]
        if len(got) != entry.get("size"):
            v.fail(f"{p}: size {len(got)} bytes, manifest says {entry.get('size')} (altered or truncated)")
            bad += 1
        elif hashlib.sha256(got).hexdigest() != entry.get("sha256"):
            v.fail(f"{p}: SHA-256 does not match the manifest (content altered)")
            bad += 1
    extra = [n for n in names if n not in files and n not in UNSIGNED]
    for n in extra:
        v.fail(f"{n}: in the packet but not in the manifest (file added)")
    if not bad:
        v.passed.append(f"{len(files)} files match manifest.json (SHA-256 and size)")
    if not extra and not bad:
        v.passed.append("no file added or removed")

    # 3. timestamp token (bound by the signature when present)
    tsr = contents.get("manifest.tsr")
    stamp_cfg = manifest.get("timestamp")
    if stamp_cfg and tsr is None:
        v.fail("manifest says the packet was time-stamped but manifest.tsr is missing")
    elif tsr is not None:
        if not stamp_cfg:
            v.fail("manifest.tsr present but the manifest does not expect a timestamp (file added)")
        try:
            info = tsa.check(tsr, hashlib.sha256(mbytes).digest())
            # not a "passed" check: without the TSA's signature the token proves nothing about time
            v.notes.append(f"timestamp token present, imprint matches the manifest: {info.gen_time} "
                           f"(TSA {stamp_cfg.get('tsa_url') if stamp_cfg else '?'}, serial {info.serial}); "
                           "TSA signature not checked — see docs/evidence.md: openssl ts -verify "
                           "-data manifest.json -in manifest.tsr -CAfile <TSA chain>")
            v.info["timestamp"] = {"time": info.gen_time, "serial": info.serial, "policy": info.policy}
        except tsa.TimestampError as e:
            v.fail(f"manifest.tsr: {e}")
    else:
        v.notes.append("no trusted (RFC 3161) timestamp: the export time rests on the exporting computer's clock")

    # 4. signature
    sig = contents.get("manifest.sig")
    pem = contents.get("public_key.pem")
    if sig is None:
        v.fail("manifest.sig is missing (packet unsigned)")
    elif pem is None:
        v.fail("public_key.pem is missing: cannot check the signature")
    else:
        try:
            key = signing.load_public(pem)
            fp = signing.fingerprint(key)
            v.info["key_fingerprint"] = fp
            if signing.check(key, signed_message(mbytes, tsr), sig):
                v.signer = fp
                v.passed.append(f"Ed25519 signature matches the public key inside the packet (fingerprint {fp})")
            else:
                v.fail("manifest.sig: the signature does not match manifest.json"
                       + (" and manifest.tsr" if tsr is not None else "") + " (altered or re-signed)")
            named = (manifest.get("public_key") or {}).get("fingerprint")
            if named not in (None, fp, signing.legacy_fingerprint(fp)):   # older packets: first 128 bits
                v.fail("public_key.pem is not the key the manifest names")
            if pubkey_pem is not None:
                want = signing.fingerprint(signing.load_public(pubkey_pem))
                if want == fp:
                    v.pinned = v.signer == fp
                    v.passed.append("signing key is the pinned key (--pubkey)")
                else:
                    v.fail(f"signed with key {fp}, not the pinned key {want}")
            else:
                v.notes.append(f"signing key not authenticated: anyone can re-sign an altered packet with their "
                               f"own key — compare fingerprint {fp} with the issuing office's published key, "
                               "or pass --pubkey")
        except signing.SigningError as e:
            v.fail(f"public_key.pem: {e}")

    # 5. the container itself: canonical layout, so any changed byte anywhere shows
    if len(contents) == len(infos) and not dupes:
        expected = container.build((i.filename, contents[i.filename]) for i in infos)
        if expected == data:
            v.passed.append(f"ZIP container intact ({len(infos)} entries, canonical layout, {len(data)} bytes)")
        else:
            at = _first_difference(expected, data)
            v.fail(f"ZIP container altered: bytes differ from the canonical layout at offset {at} "
                   f"(headers, directory or length changed; packet {len(data)} bytes, expected {len(expected)})")
    return v


def _first_difference(a: bytes, b: bytes, chunk: int = 1 << 16) -> int:
    n = min(len(a), len(b))
    for i in range(0, n, chunk):
        end = min(i + chunk, n)
        if a[i:end] != b[i:end]:
            return next(j for j in range(i, end) if a[j] != b[j])
    return n


def _entry_bytes(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """A STORED entry's bytes straight from its local header (so a changed byte is reported as a
    hash mismatch of that file rather than a CRC error). Never decompresses anything."""
    h = info.header_offset
    if data[h:h + 4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("local header missing")
    name_len, extra_len = struct.unpack("<HH", data[h + 26:h + 30])
    start = h + 30 + name_len + extra_len
    body = data[start:start + info.compress_size]
    if len(body) != info.compress_size:
        raise zipfile.BadZipFile("entry runs past the end of the file")
    return body


def format_verdict(v: Verdict) -> str:
    lines = [f"packet {v.path}"]
    m = v.info.get("manifest")
    if m:
        lines.append(f"  exported {m.get('created')} by {m.get('exporter')} with {m.get('tool')} ({m.get('selection')})")
    lines += [f"  ✓ {p}" for p in v.passed]
    lines += [f"  ✗ {p}" for p in v.problems]
    lines += [f"  · {n}" for n in v.notes]
    if v.verdict == "VALID":
        lines.append(f"VERDICT: VALID — signed by {v.signer} (pinned); every file matches the signed manifest: "
                     "unaltered since that key sealed it")
    elif v.verdict == "INTACT":
        lines.append(f"VERDICT: INTACT — hashes and signature are consistent; signer key {v.signer} NOT "
                     "authenticated: compare it with the issuer's published key or pass --pubkey")
    else:
        lines.append(f"VERDICT: INVALID — {len(v.problems)} problem(s); do not rely on this packet")
    return "\n".join(lines)


def dumps(v: Verdict) -> str:
    return json.dumps(v.as_dict(), ensure_ascii=False, indent=2)
