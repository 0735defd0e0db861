"""The environment page's inlines of app hosts and proxies, each shown up or down from the
periodic probe (changes go through the services, in ``EnvironmentAdmin.save_formset``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from deployments.models import AppHost, ProxyInstance
from swedify.admin_helpers import badge


def _probe_badge(obj: AppHost | ProxyInstance) -> str:
    if obj.probe_ok is None:
        return "not probed yet"
    state = badge("up" if obj.probe_ok else "down")
    when = f"{timezone.localtime(obj.probed_at):%H:%M:%S}" if obj.probed_at else ""
    return format_html("{} {} {}", state, when, obj.probe_error)


class AppHostInline(admin.TabularInline):
    """Hosts are added, changed and removed here; each change goes through a service."""

    model = AppHost
    extra = 0
    fields = ["address", "blue_port", "green_port", "enabled", "state"]
    readonly_fields = ["state"]

    @admin.display(description="periodic probe")
    def state(self, obj: AppHost) -> str:
        return _probe_badge(obj) if obj.pk else ""


class ProxyInstanceForm(forms.ModelForm):
    class Meta:
        model = ProxyInstance
        fields = ["name", "address", "listen_port", "admin_socket", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Blank: the service puts a proxy on this machine's socket under the data folder.
        self.fields["admin_socket"].required = False
        self.fields["admin_socket"].help_text = "blank on this machine; address:port elsewhere"


class ProxyInstanceInline(admin.TabularInline):
    model = ProxyInstance
    form = ProxyInstanceForm
    extra = 0
    fields = ["name", "address", "listen_port", "admin_socket", "enabled", "state"]
    readonly_fields = ["state"]

    @admin.display(description="periodic probe")
    def state(self, obj: ProxyInstance) -> str:
        return _probe_badge(obj) if obj.pk else ""
