"""The admin pages: users with their role and districts, and the (read-only) audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from webapp.audit import ACTIONS
from webapp.models import AuditEntry, Profile
from webapp.users import apply_role


class ProfileForm(forms.ModelForm):
    districts = forms.CharField(label="负责区县（每行一个；管理员可留空，看全部区县）", required=False,
                                widget=forms.Textarea(attrs={"rows": 4}))

    class Meta:
        model = Profile
        fields = ("role", "districts")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk:
            self.initial["districts"] = "\n".join(self.instance.districts or [])

    def clean_districts(self) -> list[str]:
        text = self.cleaned_data.get("districts") or ""
        return [d for d in dict.fromkeys(x.strip() for x in text.replace("，", "\n").replace(",", "\n").splitlines())
                if d]


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileForm
    can_delete = False
    fields = ("role", "districts")
    verbose_name_plural = "角色与负责区县"


class JianfuUserAdmin(UserAdmin):
    inlines = [ProfileInline]
    list_display = ("username", "is_active", "is_superuser", "last_login")

    def save_model(self, request, obj, form, change):
        obj._changed_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for f in formset.forms:
            f.instance._changed_by = request.user.get_username()
        super().save_formset(request, form, formset, change)

    def save_related(self, request, form, formsets, change):
        """The role chosen in the profile decides the groups (permissions) and admin rights."""
        super().save_related(request, form, formsets, change)
        user = form.instance
        prof = Profile.objects.filter(user=user).first()
        if prof is not None:
            apply_role(user, prof.role, list(prof.districts or []), changed_by=request.user.get_username())

    def delete_model(self, request, obj):
        obj._changed_by = request.user.get_username()
        super().delete_model(request, obj)


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), JianfuUserAdmin)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("seq", "at", "actor", "action_name", "target", "ip")
    list_filter = ("action",)
    search_fields = ("actor", "target")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    @admin.display(description="操作", ordering="action")
    def action_name(self, obj):
        return ACTIONS.get(obj.action, obj.action)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
