"""The pages. Every view checks role (Django permissions) and district (``webapp.access``) itself;
everything from the crawled web is passed to templates as plain strings (auto-escaped) and never
marked safe."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from detectors.model import CATEGORIES
from store.cases import CaseError
from webapp import access, audit, cases, charts, labels
from webapp.models import DECISION_NAMES, AuditEntry

PAGE_SIZE = 50


# -- errors -------------------------------------------------------------------------------------
def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "webapp/error.html", {"title": "无权访问",
                  "message": "您的角色或负责区县不允许查看此页面或执行此操作。"}, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "webapp/error.html", {"title": "未找到", "message": "没有这个页面或线索。"},
                  status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "webapp/error.html", {"title": "出错了",
                  "message": "服务器处理请求时出错，请稍后再试或联系管理员。"}, status=500)


@login_not_required
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "webapp/error.html", {"title": "请求被拒绝",
                  "message": "表单已过期或来源不明（CSRF 校验失败）。请刷新页面后重试。"}, status=403)


# -- 总览 ---------------------------------------------------------------------------------------
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    prof = access.profile(request.user)
    since = prof.last_visit
    store = cases.store()
    allowed = access.districts(request.user)
    data = cases.overview(store, allowed, since)
    trend = charts.trend_svg(data["trend"])
    prof.last_visit = timezone.now()
    prof.save(update_fields=["last_visit"])
    return render(request, "webapp/overview.html", {
        "data": data, "since": since, "trend": trend, "labels": labels.CATEGORY_NAMES,
    })


# -- 线索 ---------------------------------------------------------------------------------------
FILTERS = ("category", "district", "institution", "status", "severity", "source", "since", "until")


def _filters(request: HttpRequest) -> dict[str, str]:
    return {k: request.GET.get(k, "").strip()[:200] for k in FILTERS if request.GET.get(k, "").strip()}


@require_GET
def case_list(request: HttpRequest) -> HttpResponse:
    store = cases.store()
    allowed = access.districts(request.user)
    q = request.GET.get("q", "").strip()[:500]
    f = _filters(request)
    if f.get("district") and not access.may_see_district(request.user, f["district"]):
        raise access.deny(request, f"district:{f['district']}")
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    after = request.GET.get("after", "").strip()[:500] or None
    error = None
    try:
        result = cases.query(store, allowed=allowed, q=q, filters=f, page=page, size=PAGE_SIZE, after=after)
    except (cases.QueryError, CaseError) as e:
        error = str(e) if isinstance(e, cases.QueryError) else "翻页位置无效，请从第一页重新开始。"
        result = cases.Page([], 0, page, PAGE_SIZE)
    base = {k: v for k, v in {"q": q, **f}.items() if v}
    facets = cases.facets(store, allowed)
    return render(request, "webapp/cases.html", {
        "result": result, "q": q, "filters": f, "error": error, "facets": facets,
        "categories": [(c, labels.CATEGORY_NAMES.get(c, c)) for c in CATEGORIES],
        "statuses": labels.STATUS_NAMES.items(), "severities": labels.SEVERITY_NAMES.items(),
        "sources": labels.SOURCE_NAMES.items(),
        "prev_url": "?" + urlencode({**base, "page": page - 1}) if page > 1 else None,
        # the next page by keyset (the last row's cursor): page 500 costs what page 1 does
        "next_url": "?" + urlencode({**base, "page": page + 1, "after": result.next_after}) if result.has_next
        else None,
        "query_string": urlencode(base),
    })


def _visible_case(request: HttpRequest, case_id: str, *, detail: bool = False) -> dict[str, Any]:
    """The case (its summary, or with ``detail`` everything its page shows), or 404; 403 when it lies
    outside the user's districts."""
    case = cases.get(cases.store(), case_id) if detail else cases.store().case(case_id, detail=False)
    if case is None:
        raise Http404
    if not access.may_see_district(request.user, case.get("district")):
        raise access.deny(request, f"case:{case_id}", district=case.get("district") or "")
    return case


@require_GET
def case_detail(request: HttpRequest, case_id: str) -> HttpResponse:
    case = _visible_case(request, case_id, detail=True)
    audit.log(request, "case_view", case_id)
    from webapp.intake_views import case_intake

    return render(request, "webapp/case.html", {
        "case": case, "decisions": DECISION_NAMES.items(), "figures": charts.figures(case),
        "history": labels.review_history(case["reviews"]), **case_intake(request, case_id),
    })


@require_GET
def case_image(request: HttpRequest, case_id: str, sha256: str) -> HttpResponse:
    """A screenshot or ad image of a case the user may see, with its real type. Anything that is not
    a raster image (an SVG with script, an HTML page posing as a .png) is only offered as a download."""
    case = _visible_case(request, case_id, detail=True)
    if sha256 not in cases.blob_digests(case):
        raise Http404
    path = cases.store().blob_path(sha256)
    if not path.is_file():
        raise Http404
    with path.open("rb") as fh:
        ctype = cases.sniff_image(fh.read(16))
    resp = FileResponse(path.open("rb"), content_type=ctype or "application/octet-stream")
    disposition = "inline" if ctype else "attachment"
    ext = (ctype or "application/octet-stream").rsplit("/", 1)[-1].replace("octet-stream", "bin")
    resp["Content-Disposition"] = f'{disposition}; filename="{sha256[:16]}.{ext}"'
    resp["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp["Cache-Control"] = "private, max-age=3600"
    return resp


# -- review workflow ----------------------------------------------------------------------------
@require_POST
@access.require_perm("propose_review")
def propose(request: HttpRequest, case_id: str) -> HttpResponse:
    _visible_case(request, case_id)
    decision = request.POST.get("decision", "")
    reason = request.POST.get("reason", "").strip()[:4000]
    if decision not in DECISION_NAMES or not reason:
        messages.error(request, "请选择处理意见并填写理由。")
        return redirect("case", case_id=case_id)
    rid = cases.store().propose_case_status(case_id, decision, actor=request.user.get_username(), reason=reason)
    audit.log(request, "review_proposed", case_id, proposal=rid, decision=decision, reason=reason)
    messages.success(request, f"已提交“{DECISION_NAMES[decision]}”意见，等待督导审批。")
    return redirect("case", case_id=case_id)


@require_GET
@access.require_perm("approve_review")
def review_queue(request: HttpRequest) -> HttpResponse:
    rows = cases.pending(cases.store(), access.districts(request.user))
    return render(request, "webapp/reviews.html", {"pending": rows[:500], "total": len(rows)})


@require_POST
@access.require_perm("approve_review")
def decide(request: HttpRequest, case_id: str) -> HttpResponse:
    from store.cases import CaseError

    case = _visible_case(request, case_id)
    approve = request.POST.get("action") == "approve"
    note = request.POST.get("note", "").strip()[:4000] or None
    proposal = request.POST.get("proposal", "")
    try:
        cases.store().decide_case_proposal(case_id, approve=approve, actor=request.user.get_username(),
                                           reason=note, proposal_id=proposal or None)
    except CaseError:
        messages.error(request, "这条意见已经处理过或已被新的意见取代。")
        return redirect("case", case_id=case_id)
    audit.log(request, "review_approved" if approve else "review_rejected", case_id, proposal=proposal,
              decision=case.get("proposed_status") or "", note=note or "")
    messages.success(request, "已批准，线索状态已更新。" if approve else "已驳回该意见。")
    return redirect("case", case_id=case_id)


# -- evidence -----------------------------------------------------------------------------------
@require_POST
@access.require_perm("export_evidence")
def export_cases(request: HttpRequest) -> HttpResponse:
    from evidence.packet import ExportError, ExportRequest, export

    ids = [i for i in request.POST.getlist("case") if i][:500]
    if not ids:
        messages.error(request, "请先选择要导出的线索。")
        return redirect(request.POST.get("back") or "cases")
    for cid in ids:
        _visible_case(request, cid)
    tmp = Path(tempfile.mkdtemp(prefix="jianfu-export-"))
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    out = tmp / f"证据包-{stamp}.zip"
    # the cases the supervisor chose, as `jianfu export --case` exports them (a dismissed one too: chosen)
    req = ExportRequest(case_ids=ids, examiner=f"{request.user.get_username()}（网页导出）",
                        include_dismissed=True, pdf=True)
    try:
        summary = export(cases.store().dir, out, req)
    except ExportError as e:
        audit.log(request, "evidence_export", ",".join(ids)[:300], ok=False, error=str(e)[:300])
        messages.error(request, f"证据包导出失败：{e}")
        return redirect("cases")
    digest = cases.sha256_file(out)
    audit.log(request, "evidence_export", ",".join(ids)[:300], cases=ids, findings=summary.get("findings", 0),
              sha256=digest, key=summary.get("key_fingerprint", ""))
    resp = FileResponse(_unlinking(out), as_attachment=True, filename=out.name, content_type="application/zip")
    resp["X-Packet-SHA256"] = digest
    return resp


class _unlinking(io.FileIO):
    """A file that removes itself (and its temporary folder) once the response is sent."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self._path = path

    def close(self) -> None:
        super().close()
        self._path.unlink(missing_ok=True)
        try:
            self._path.parent.rmdir()
        except OSError:
            pass


# -- 机构 ---------------------------------------------------------------------------------------
@require_GET
def institution_list(request: HttpRequest) -> HttpResponse:
    rows = cases.institutions(cases.store(), access.districts(request.user))
    return render(request, "webapp/institutions.html", {"rows": rows})


@require_GET
def institution_detail(request: HttpRequest, name: str) -> HttpResponse:
    store = cases.store()
    allowed = access.districts(request.user)
    info = cases.institution(store, name, allowed)
    if info is None:
        raise Http404
    return render(request, "webapp/institution.html", {
        "name": name, "info": info, "trend": charts.trend_svg(info["trend"]),
        "cases_url": "/cases/?" + urlencode({"institution": name}),
    })


# -- 扫描 ---------------------------------------------------------------------------------------
def _plan():
    from scheduler.plans import PlanError, load_plan

    if not settings.PLAN_FILE.is_file():
        return None, None
    try:
        return load_plan(settings.PLAN_FILE), None
    except PlanError as e:
        return None, str(e)


@require_GET
def scans(request: HttpRequest) -> HttpResponse:
    from scheduler import runs

    plan, plan_error = _plan()
    allowed = access.districts(request.user)
    targets = []
    if plan is not None:
        targets = [t for t in plan.targets.values() if allowed is None or (t.district or "") in allowed]
    names = {t.name for t in targets}
    db = runs.connect(cases.store().dir)
    try:
        history = [r for r in runs.list_runs(db, limit=200) if allowed is None or r["target"] in names]
        last = runs.last_runs(db)
    finally:
        db.close()
    return render(request, "webapp/scans.html", {
        "targets": [{"t": t, "last": last.get(t.name)} for t in targets], "history": history[:100],
        "plan_error": plan_error, "plan_file": settings.PLAN_FILE.name,
        "districts": allowed if allowed is not None else None,
    })


@require_POST
@access.require_perm("manage_scans")
def scan_add(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip()
    seed_url = request.POST.get("url", "").strip()
    institution = request.POST.get("institution", "").strip()
    district = request.POST.get("district", "").strip()
    every = request.POST.get("every", "1d").strip() or "1d"
    if not access.may_see_district(request.user, district):
        raise access.deny(request, f"district:{district}")
    seed = f"{institution}={seed_url}" if institution else seed_url
    if not settings.PLAN_FILE.exists():
        settings.PLAN_FILE.write_text(f"store = {_toml_str(str(cases.store().dir))}\n", encoding="utf-8")
    args = ["schedule", "add", name, "--plan", str(settings.PLAN_FILE), "--seed", seed, "--every", every]
    if district:
        args += ["--district", district]
    proc = _jianfu(args)
    if proc.returncode != 0:
        messages.error(request, "无法添加扫描目标：" + labels.plan_error(proc.stderr))
        return redirect("scans")
    audit.log(request, "scan_target_added", name, seed=seed, district=district, every=every)
    messages.success(request, f"已添加扫描目标“{name}”。")
    return redirect("scans")


@require_POST
@access.require_perm("manage_scans")
def scan_run_now(request: HttpRequest) -> HttpResponse:
    plan, _ = _plan()
    name = request.POST.get("name", "")
    if plan is None or name not in plan.targets:
        raise Http404
    if not access.may_see_district(request.user, plan.targets[name].district):
        raise access.deny(request, f"target:{name}")
    subprocess.Popen([sys.executable, "-m", "jianfu", "schedule", "run-now", name, "--plan", str(plan.path)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
    audit.log(request, "scan_run_now", name)
    messages.success(request, f"已开始扫描“{name}”，完成后会出现在运行记录中。")
    return redirect("scans")


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _jianfu(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jianfu", *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent)


# -- audit export -------------------------------------------------------------------------------
class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@access.require_perm("export_audit")
def audit_export(request: HttpRequest) -> HttpResponse:
    audit.log(request, "audit_export", "audit")
    writer = csv.writer(_Echo())

    def rows():
        yield "\ufeff"
        yield writer.writerow(["序号", "时间（北京时间）", "操作人", "操作", "对象", "详情", "来源地址", "前一哈希", "哈希"])
        for e in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
            yield writer.writerow([e.seq, timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M:%S.%f"), e.actor,
                                   audit.ACTIONS.get(e.action, e.action), e.target, e.detail, e.ip,
                                   e.prev_hash, e.hash])

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    resp = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return resp

