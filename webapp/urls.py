from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from webapp import intake_views, views

admin.site.site_header = admin.site.site_title = "减负 线索平台 · 管理"
admin.site.index_title = "用户与审计"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.overview, name="overview"),
    path("cases/", views.case_list, name="cases"),
    path("cases/export/", views.export_cases, name="export"),
    path("cases/<str:case_id>/", views.case_detail, name="case"),
    path("cases/<str:case_id>/image/<str:sha256>", views.case_image, name="case_image"),
    path("cases/<str:case_id>/propose/", views.propose, name="propose"),
    path("cases/<str:case_id>/decide/", views.decide, name="decide"),
    path("reviews/", views.review_queue, name="reviews"),
    path("institutions/", views.institution_list, name="institutions"),
    path("institutions/<path:name>/", views.institution_detail, name="institution"),
    path("scans/", views.scans, name="scans"),
    path("scans/add/", views.scan_add, name="scan_add"),
    path("scans/run/", views.scan_run_now, name="scan_run"),
    path("check/", intake_views.check_now, name="check"),
    path("tips/", intake_views.tips, name="tips"),
    path("tips/<str:tip_id>/", intake_views.tip_detail, name="tip"),
    path("tips/<str:tip_id>/outcome/", intake_views.tip_outcome, name="tip_outcome"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path("admin/", admin.site.urls),
]

handler403 = "webapp.views.forbidden"
handler404 = "webapp.views.not_found"
handler500 = "webapp.views.server_error"
