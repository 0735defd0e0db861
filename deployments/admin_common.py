"""What the deployments admins share: the confirmation page that asks for a reason, the
automatic-rollback banner, the "queued" message, and times and durations written the same
way everywhere (times with their time zone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from deployments.models import PipelineRun, Rollback
from deployments.rollbacks import rollback_banner

CONFIRM_TEMPLATE = "admin/deployments/confirm.html"


class ConfirmForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        strip=True,
        help_text="Kept in the audit trail.",
    )
    confirm_unsafe = forms.BooleanField(required=False)


def confirm_page(
    request: HttpRequest,
    admin_site: admin.AdminSite,
    *,
    title: str,
    facts: list[tuple[str, Any]],
    form: forms.Form | None,
    button: str,
    ask_unsafe: str = "",
    cancel_url: str,
) -> TemplateResponse:
    """A confirmation page listing ``facts``; without ``form`` it asks for no reason."""
    context = {
        **admin_site.each_context(request),
        "title": title,
        "facts": facts,
        "form": form,
        "button": button,
        "ask_unsafe": ask_unsafe,
        "cancel_url": cancel_url,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


def announce_automatic_rollbacks(request: HttpRequest, rollbacks: list[Rollback]) -> None:
    # Shown on the page being rendered (the admin lists messages at its top).
    for rollback in rollbacks:
        messages.warning(request, rollback_banner(rollback))


def queued_message(run: PipelineRun) -> str:
    """What the operator is told once the run was handed to a worker (on commit)."""
    run.refresh_from_db(fields=["warnings", "status"])
    refused = [w for w in run.warnings if w.startswith("could not be queued")]
    if refused:
        return f"Run #{run.pk} is {run.status} but {refused[-1]}"
    return f"Run #{run.pk} of {run.release.label} queued."


def when(value: datetime | None) -> str:
    """A moment as operators compare it with logs and other machines: in the server's time
    zone, which is named (``2026-12-03 12:20:04 UTC``)."""
    if value is None:
        return "—"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def seconds_text(seconds: float | None) -> str:
    """``42.3 s``, ``3 min 12 s``, ``1 h 02 min``: short enough for a table cell."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
