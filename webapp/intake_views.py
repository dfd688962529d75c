"""即时检查 (check links and uploads now) and 举报 (tips) pages. Uploads are inspected by
``intake.uploads`` before anything reads them (size first, from the upload's declared size, before
its bytes are read); links are checked by ``jianfu check`` in a subprocess (the crawler's Twisted
reactor runs once per process). Districts are checked like every other view; contacts are never
written to the audit log."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from intake.command import CHANNEL_ZH, OUTCOME_ZH, STATUS_ZH
from intake.uploads import KIND_ZH, MAX_UPLOAD_BYTES
from store import Store
from webapp import access, audit, cases

MAX_FILES = 10
MAX_LINKS = 5


def _district(request: HttpRequest) -> str:
    """The district chosen on the form, which the user must be allowed; a user bound to districts
    who chose none gets their first, so what they check stays visible to them."""
    district = request.POST.get("district", "").strip()[:100]
    allowed = access.districts(request.user)
    if not district and allowed:
        district = allowed[0]
    if not access.may_see_district(request.user, district):
        raise access.deny(request, f"district:{district}")
    return district


def _links(request: HttpRequest) -> list[str]:
    return [u.strip() for u in request.POST.get("links", "").split() if u.strip()][:MAX_LINKS]


def _check(request: HttpRequest, *, institution: str, district: str, source: str,
           tip_id: str | None) -> list[dict[str, Any]]:
    """Check the uploaded files (here) and links (``jianfu check`` subprocess); results as dicts."""
    from intake.check import Checker, Result

    results: list[dict[str, Any]] = []
    uploads = request.FILES.getlist("files")[:MAX_FILES]
    if uploads:
        with Store(settings.STORE_LOCATION) as store, Checker(store, institution=institution or None,
                                                         district=district or None, source=source,
                                                         tip_id=tip_id) as checker:
            for f in uploads:
                name = (f.name or "上传文件")[:200]
                if f.size > MAX_UPLOAD_BYTES:  # refused on its declared size, before a byte is read
                    reason = f"“{name}”太大（{f.size / 1024 / 1024:.0f} MB），上限 {MAX_UPLOAD_BYTES // 1024 // 1024} MB"
                    sid = store.add_submission(kind="file", name=name, bytes=f.size, status="refused", reason=reason,
                                               submitted_by=source, institution=institution or None,
                                               district=district or None, tip_id=tip_id)
                    results.append(Result(sid, name, "file", "refused", reason=reason).to_dict())
                    continue
                results.append(checker.check_file(f.read(), name).to_dict())
    links = _links(request)
    if links:
        args = [sys.executable, "-m", "jianfu", "check", *links, "--store", settings.STORE_LOCATION,
                "--format", "json", "--source", source]
        for flag, value in (("--institution", institution), ("--district", district), ("--tip", tip_id)):
            if value:
                args += [flag, value]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                                  cwd=Path(__file__).resolve().parent.parent)
            lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
            if not lines:
                lines = [{"name": " ".join(links), "kind": "url", "status": "failed", "findings": [], "cases": [],
                          "reason": "网址检查未能完成：" + ((proc.stderr.strip().splitlines() or ["未知原因"])[-1]
                                                     .split("error: ", 1)[-1][:300])}]
        except subprocess.TimeoutExpired:
            lines = [{"name": " ".join(links), "kind": "url", "status": "failed", "findings": [], "cases": [],
                      "reason": "网址检查超时（5 分钟），请稍后再试"}]
        results += lines
    for r in results:
        r["kind_name"] = KIND_ZH.get(r.get("kind", ""), "文件")
        r["status_name"] = STATUS_ZH.get(r.get("status", ""), r.get("status", ""))
    return results


@require_http_methods(["GET", "POST"])
def check_now(request: HttpRequest) -> HttpResponse:
    results = None
    if request.method == "POST":
        district = _district(request)
        institution = request.POST.get("institution", "").strip()[:200]
        source = request.POST.get("source", "").strip()[:200] or f"即时检查（{request.user.get_username()}）"
        if not request.FILES.getlist("files") and not _links(request):
            messages.error(request, "请粘贴网址或选择要上传的文件。")
            return redirect("check")
        results = _check(request, institution=institution, district=district, source=source, tip_id=None)
        audit.log(request, "check_submitted", ",".join(r.get("id", "") for r in results)[:300],
                  items=len(results), findings=sum(len(r.get("findings") or []) for r in results),
                  refused=sum(1 for r in results if r.get("status") != "checked"))
    return render(request, "webapp/check.html", {
        "results": results, "districts": access.districts(request.user), "max_files": MAX_FILES,
        "max_links": MAX_LINKS, "max_mb": MAX_UPLOAD_BYTES // 1024 // 1024})


def _visible_tip(request: HttpRequest, tip_id: str) -> dict[str, Any]:
    tip = cases.store().tip(tip_id)
    if tip is None:
        raise Http404
    if not access.may_see_district(request.user, tip.get("district")):
        raise access.deny(request, f"tip:{tip_id}", district=tip.get("district") or "")
    return tip


def _received_at(raw: str) -> str | None:
    """A datetime-local value (北京时间) as ISO-8601 UTC; None for empty or unreadable."""
    try:
        local = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if local.tzinfo is None:
        local = timezone.make_aware(local)
    return local.astimezone(timezone.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@require_http_methods(["GET", "POST"])
def tips(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        district = _district(request)
        channel = request.POST.get("channel", "")
        if channel not in CHANNEL_ZH:
            messages.error(request, "请选择举报渠道。")
            return redirect("tips")
        field = {k: request.POST.get(k, "").strip()[:4000] or None
                 for k in ("forwarded_by", "contact", "institution")}
        links = _links(request)
        tip_id = cases.store().add_tip(
            channel=channel, text=request.POST.get("text", "").strip()[:20000], urls=links,
            received_at=_received_at(request.POST.get("received_at", "")), district=district or None,
            recorded_by=request.user.get_username(), **field)
        results = _check(request, institution=field["institution"] or "", district=district,
                         source=f"举报 {tip_id}", tip_id=tip_id) if (links or request.FILES.getlist("files")) else []
        audit.log(request, "tip_added", tip_id, channel=channel, district=district, items=len(results),
                  cases=len({c for r in results for c in r.get("cases") or []}))
        refused = [r for r in results if r.get("status") != "checked"]
        messages.success(request, f"已登记举报 {tip_id}。" + (f"其中 {len(refused)} 份材料未能检查，原因见下方。"
                                                            if refused else ""))
        return redirect("tip", tip_id=tip_id)
    allowed = access.districts(request.user)
    rows = [t for t in cases.store().tips(limit=500) if allowed is None or (t.get("district") or "") in allowed]
    return render(request, "webapp/tips.html", {
        "tips": rows, "channels": CHANNEL_ZH.items(), "outcomes": OUTCOME_ZH, "districts": allowed,
        "max_files": MAX_FILES, "max_links": MAX_LINKS})


def tip_detail(request: HttpRequest, tip_id: str) -> HttpResponse:
    tip = _visible_tip(request, tip_id)
    st = cases.store()
    audit.log(request, "tip_view", tip_id)
    submissions = st.submissions(tip_id=tip_id)
    for s in submissions:
        s["kind_name"] = KIND_ZH.get(s["kind"], "文件")
        s["status_name"] = STATUS_ZH.get(s["status"], s["status"])
    return render(request, "webapp/tip.html", {
        "tip": tip, "channel": CHANNEL_ZH.get(tip["channel"], tip["channel"]),
        "outcome": OUTCOME_ZH.get(tip["outcome"], tip["outcome"]), "outcomes": OUTCOME_ZH.items(),
        "submissions": submissions, "cases": st.tip_cases(tip_id)})


@require_POST
def tip_outcome(request: HttpRequest, tip_id: str) -> HttpResponse:
    _visible_tip(request, tip_id)
    outcome = request.POST.get("outcome", "")
    if outcome not in OUTCOME_ZH:
        messages.error(request, "请选择处理结果。")
        return redirect("tip", tip_id=tip_id)
    note = request.POST.get("note", "").strip()[:4000] or None
    cases.store().set_tip_outcome(tip_id, outcome, note)
    audit.log(request, "tip_outcome", tip_id, outcome=outcome, note=note or "")
    messages.success(request, f"处理结果已更新为“{OUTCOME_ZH[outcome]}”。")
    return redirect("tip", tip_id=tip_id)


def case_intake(request: HttpRequest, case_id: str) -> dict[str, Any]:
    """For the case page: the material its findings were read from and the tips (of the user's
    districts) that led to it."""
    st = cases.store()
    tips = [t for t in (st.tip(i) for i in st.tips_of_cases([case_id]).get(case_id, []))
            if t and access.may_see_district(request.user, t.get("district"))]
    for t in tips:
        t["channel_name"] = CHANNEL_ZH.get(t["channel"], t["channel"])
        t["outcome_name"] = OUTCOME_ZH.get(t["outcome"], t["outcome"])
    subs = st.case_submissions(case_id)
    for s in subs:
        s["kind_name"] = KIND_ZH.get(s["kind"], "文件")
    return {"case_tips": tips, "case_submissions": subs}
