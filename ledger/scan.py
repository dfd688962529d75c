"""The step after each scan: link every scanned site to its ledger institution, put the ledger
record on the site's findings, and save the cross-check findings (``ledger.crosscheck``).

Runs only when the store has a ledger (``jianfu institutions import``); ``jianfu institutions
check`` runs it again on an earlier scan (e.g. after importing a newer ledger).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from ledger.codes import licence_key, printed_identifiers
from ledger.crosscheck import Page, SiteEvidence, cross_check, link_site
from ledger.records import Institution, host_key, name_key
from store import Store


def _insts(rows: list[dict[str, Any]]) -> list[Institution]:
    return [Institution.from_values(r) for r in rows]


def qr_keys(payload: str) -> tuple[list[str], list[str]]:
    """(hosts, account ids) a QR payload may name: a URL's host, and its last path segment or the
    bare text as a WeChat account / mini-program id."""
    payload = payload.strip()
    parts = urlsplit(payload)
    if parts.scheme in ("http", "https") and parts.hostname:
        tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
        return [host_key(payload)], [t.lower() for t in (tail,) if t]
    return [], [payload.lower()] if payload and len(payload) <= 64 else []


def site_evidence(store: Store, scan_id: str) -> list[SiteEvidence]:
    """The scan's pages, findings and QR targets, grouped by the seed's institution name."""
    pages: dict[str, list[Page]] = defaultdict(list)
    site_of_page: dict[str, str] = {}
    for p in store.pages(scan_id):
        site = p["institution"] or host_key(p["url"])
        pages[site].append(Page(p["url"], p["text"] or ""))
        site_of_page[p["url"]] = site
    findings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in store.findings(scan_id=scan_id):
        findings[f["institution"] or host_key(f["url"])].append(f)
    qr: dict[str, list[str]] = defaultdict(list)
    for q in store.qr_links(scan_id):
        if q["page_url"] in site_of_page:
            qr[site_of_page[q["page_url"]]].append(q["payload"])
    out = []
    for site, site_pages in pages.items():
        hosts = {host_key(p.url) for p in site_pages}
        printed = [(p.url, x) for p in site_pages for x in printed_identifiers(p.text)]
        out.append(SiteEvidence(site=site, named=site not in hosts, pages=site_pages, findings=findings[site],
                                printed=printed, qr_targets=sorted(set(qr[site]))))
    return out


def candidates(store: Store, ev: SiteEvidence) -> dict[str, list[Institution]]:
    codes = [p.value for _, p in ev.printed if p.kind == "credit_code" and p.valid]
    licences = [licence_key(p.value) for _, p in ev.printed if p.kind == "licence"]
    qr_hosts, qr_ids = [], []
    for payload in ev.qr_targets:
        hosts, ids = qr_keys(payload)
        qr_hosts += hosts
        qr_ids += ids
    by_qr = (store.institutions_by_key("host", qr_hosts) + store.institutions_by_key("wechat", qr_ids)
             + store.institutions_by_key("mini_program", qr_ids))
    return {
        "seed": _insts(store.institutions_by_key("name", [name_key(ev.site)])) if ev.named else [],
        "domain": _insts(store.institutions_by_key("host", ev.hosts)),
        "credit_code": _insts([r for c in dict.fromkeys(codes) if (r := store.institution(c))]),
        "licence": _insts(store.institutions_by_key("licence", licences)),
        "qr": _insts(list({r["credit_code"]: r for r in by_qr}.values())),
    }


def owners_of(store: Store, ev: SiteEvidence) -> dict[tuple[str, str], Institution]:
    owners: dict[tuple[str, str], Institution] = {}
    for _, p in ev.printed:
        if p.kind == "credit_code":
            row = store.institution(p.value)
            if row:
                owners[("credit_code", p.value)] = Institution.from_values(row)
        else:
            rows = store.institutions_by_key("licence", [licence_key(p.value)])
            if rows:
                owners[("licence", licence_key(p.value))] = Institution.from_values(rows[0])
    return owners


def check_scan(store: Store, scan_id: str) -> list[dict[str, Any]] | None:
    """Cross-check every site of ``scan_id`` against the ledger; None when the store has no ledger.
    Returns one entry per site: its institution (or None), how it was linked, the check ids fired."""
    if not store.has_ledger():
        return None
    out = []
    for ev in site_evidence(store, scan_id):
        link = link_site(ev, candidates(store, ev))
        similar = []  # ledger names containing the site's name: hints for an unregistered site
        if link.institution is None and ev.named and len(ev.site) >= 2:
            similar = _insts(list(store.institutions(name=ev.site, limit=3)))
        found = cross_check(ev, link, owners_of(store, ev), similar)
        district = next((f["district"] for f in ev.findings if f.get("district")), None)
        ids = [f["id"] for f in ev.findings]
        for cf in found:
            a = cf.anchor
            ids += store.save_findings(scan_id, a.url, a.source, a.text, [cf.finding], image_url=a.image_url,
                                       image_sha256=a.image_sha256,
                                       boxes=[a.boxes] if a.boxes is not None else None,
                                       institution=ev.site, district=district)
        inst = link.institution
        if inst is not None:
            store.attach_ledger(ids, inst.credit_code, inst.snapshot())
        store.record_scan_site(scan_id, ev.site, inst.credit_code if inst else None, link.how,
                               link.detail or None)
        out.append({"site": ev.site, "credit_code": inst.credit_code if inst else None,
                    "name": inst.name if inst else None, "linked_by": link.how, "detail": link.detail,
                    "checks": [cf.finding.rule_id for cf in found]})
    return out
