"""The operator's console: environments (live vs. what HAProxy routes), releases, pipeline runs
with their stages, deployments, health history, rollbacks and the audit trail.

History is read-only here. Destructive actions (rollback, abort, override, breaking a lock) go
through a confirmation page that asks for a reason; the admin only checks preconditions and
calls a service.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

# Registers the releases' and pipeline runs' admins (their own module, for length).
import deployments.admin_runs  # noqa: F401
from deployments import selectors
from deployments.admin_common import ConfirmForm, announce_automatic_rollbacks, confirm_page, when
from deployments.admin_hosts import AppHostInline, ProxyInstanceInline
from deployments.models import (
    AppHost,
    AuditEvent,
    Deployment,
    DeploymentStatus,
    Environment,
    HealthCheck,
    PipelineRun,
    ProxyInstance,
    Rollback,
    StageRun,
)
from deployments.reports import rollback_over_budget
from deployments.rollbacks import (
    releases_blocking_rollback,
    rollback_start,
    rollback_target,
    rollbacks_automatic_recent,
)
from deployments.services import (
    DeploymentError,
    environment_configure,
    environment_host_add,
    environment_host_remove,
    environment_host_set_enabled,
    environment_lock_break,
    environment_proxy_add,
    environment_proxy_remove,
    environment_proxy_set_enabled,
)
from swedify.admin_helpers import ReadOnlyAdmin, ReadOnlyInline, badge

# --- Environments -------------------------------------------------------------------------


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "live", "idle_slot", "lock", "members", "uptime_24h"]
    list_select_related = ["live_release"]
    inlines = [AppHostInline, ProxyInstanceInline]
    fields = ["name", "blue_port", "green_port", "listen_port", "admin_socket", "dns_ttl_seconds"]
    change_form_template = "admin/deployments/environment/change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name"] if obj is not None else []

    def get_queryset(self, request: HttpRequest) -> QuerySet[Environment]:
        return super().get_queryset(request).prefetch_related("hosts", "proxies")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="live")
    def live(self, obj: Environment) -> str:
        if not obj.live_slot:
            return "nothing live"
        label = obj.live_release.label if obj.live_release else "?"
        return f"{obj.live_slot} ({label})"

    @admin.display(description="lock")
    def lock(self, obj: Environment) -> str:
        if not obj.lock_holder:
            return "free"
        return f"{obj.lock_holder} since {when(obj.locked_at)}"

    @admin.display(description="hosts / proxies up")
    def members(self, obj: Environment) -> str:
        hosts = [h for h in obj.hosts.all() if h.enabled]
        proxies = [p for p in obj.proxies.all() if p.enabled]
        if not hosts and not proxies:
            return "one host"
        parts = []
        for label, members in (("hosts", hosts), ("proxies", proxies)):
            up = sum(1 for m in members if m.probe_ok)
            colour = "ok" if up == len(members) else "failed"
            parts.append(badge(f"{up}/{len(members)} {label} up", colour))
        return format_html("{} {}", *parts)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # Hosts and proxies change through the services, so each change is checked and
        # audited like any other.
        environment = form.instance
        changed = formset.save(commit=False)  # also fills deleted_objects; saves nothing
        for obj in formset.deleted_objects:
            if isinstance(obj, AppHost):
                environment_host_remove(
                    environment=environment, address=obj.address, actor=request.user
                )
            else:
                environment_proxy_remove(environment=environment, name=obj.name, actor=request.user)
        for obj in changed:
            if isinstance(obj, AppHost):
                self._host_save(request, environment, obj)
            else:
                self._proxy_save(request, environment, obj)

    def _host_save(self, request: HttpRequest, environment: Environment, obj: AppHost) -> None:
        before = AppHost.objects.filter(pk=obj.pk).first() if obj.pk else None
        if before is not None and before.address != obj.address:
            environment_host_remove(
                environment=environment, address=before.address, actor=request.user
            )
        environment_host_add(
            environment=environment,
            address=obj.address,
            blue_port=obj.blue_port,
            green_port=obj.green_port,
            actor=request.user,
        )
        if not obj.enabled:
            environment_host_set_enabled(
                environment=environment, address=obj.address, enabled=False, actor=request.user
            )

    def _proxy_save(
        self, request: HttpRequest, environment: Environment, obj: ProxyInstance
    ) -> None:
        environment_proxy_add(
            environment=environment,
            name=obj.name,
            address=obj.address,
            listen_port=obj.listen_port,
            admin_socket=obj.admin_socket,
            actor=request.user,
        )
        if not obj.enabled:
            environment_proxy_set_enabled(
                environment=environment, name=obj.name, enabled=False, actor=request.user
            )

    @admin.display(description="uptime 24 h")
    def uptime_24h(self, obj: Environment) -> str:
        uptime = selectors.environment_uptime(environment=obj)[0]
        if uptime.percent is None:
            return "no probes"
        return badge(f"{uptime.percent:.3f} %", "ok" if uptime.meets_target else "failed")

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        # Configuration goes through the service so that it is audited like everything else.
        saved = environment_configure(
            name=obj.name,
            blue_port=obj.blue_port,
            green_port=obj.green_port,
            listen_port=obj.listen_port,
            admin_socket=obj.admin_socket,
            dns_ttl_seconds=obj.dns_ttl_seconds,
            actor=request.user,
        )
        obj.pk = saved.pk

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        environment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if environment is not None:
            extra["overview"] = selectors.environment_overview(environment=environment)
            extra["analysing_run"] = _analysing_run(environment)
            announce_automatic_rollbacks(
                request, [r for r in rollbacks_automatic_recent() if r.environment == environment]
            )
        return super().change_view(request, object_id, form_url, extra)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        announce_automatic_rollbacks(request, rollbacks_automatic_recent())
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/rollback/", wrap(self.rollback_view), name="deployments_rollback"),
            path("<int:pk>/break-lock/", wrap(self.break_lock_view), name="deployments_break_lock"),
            *super().get_urls(),
        ]

    def _operable(self, request: HttpRequest, pk: int) -> Environment:
        if not request.user.has_perm("deployments.change_environment"):
            raise PermissionDenied
        return get_object_or_404(Environment.objects.select_related("live_release"), pk=pk)

    def _page_url(self, environment: Environment) -> str:
        return reverse("admin:deployments_environment_change", args=[environment.pk])

    def rollback_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        environment = self._operable(request, pk)
        target = rollback_target(environment=environment)
        blocking = (
            releases_blocking_rollback(from_release=environment.live_release, to_release=target)
            if target is not None and environment.live_release is not None
            else []
        )
        unsafe = "; ".join(f"{r.label}: {r.rollback_unsafe_reason}" for r in blocking)
        form = ConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if blocking and not form.cleaned_data["confirm_unsafe"]:
                form.add_error("confirm_unsafe", "Confirm that you roll back over these releases.")
            else:
                try:
                    rollback = rollback_start(
                        environment=environment,
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                        to_release=target,
                        confirm_unsafe=form.cleaned_data["confirm_unsafe"],
                        background=True,
                    )
                except DeploymentError as error:
                    self.message_user(request, str(error), messages.ERROR)
                    return HttpResponseRedirect(self._page_url(environment))
                self.message_user(request, *_rollback_message(rollback))
                return HttpResponseRedirect(self._page_url(environment))
        live = environment.live_release
        return confirm_page(
            request,
            self.admin_site,
            title=f"Roll back {environment.name}",
            facts=[
                ("live", f"{environment.live_slot or '—'} ({live.label if live else 'nothing'})"),
                ("back to", target or "no earlier release"),
                ("not rollback-safe", unsafe or "none"),
            ],
            form=form,
            button="Roll back",
            ask_unsafe=unsafe,
            cancel_url=self._page_url(environment),
        )

    def break_lock_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        environment = self._operable(request, pk)
        form = ConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                environment_lock_break(
                    environment=environment, reason=form.cleaned_data["reason"], actor=request.user
                )
            except DeploymentError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Broke {environment.name}'s lock.", messages.SUCCESS)
            return HttpResponseRedirect(self._page_url(environment))
        return confirm_page(
            request,
            self.admin_site,
            title=f"Break {environment.name}'s deploy lock",
            facts=[
                ("held by", environment.lock_holder or "nobody"),
                ("since", environment.locked_at),
            ],
            form=form,
            button="Break the lock",
            cancel_url=self._page_url(environment),
        )


def _analysing_run(environment: Environment) -> PipelineRun | None:
    """The run watching ``environment``'s live release in its analysis window, if any."""
    return (
        PipelineRun.objects.filter(
            status=PipelineRun.Status.RUNNING,
            environments=environment,
            stages__kind="analysis",
            stages__outcome=StageRun.Outcome.RUNNING,
        )
        .order_by("-pk")
        .first()
    )


def _rollback_message(rollback: Rollback) -> tuple[str, int]:
    if rollback.status == Rollback.Status.RUNNING:
        return (
            f"Rollback #{rollback.pk} redeploys {rollback.to_release.label} in a worker "
            "(the old slot was not warm); follow it in Rollbacks.",
            messages.INFO,
        )
    level = messages.SUCCESS if rollback.status == Rollback.Status.SUCCEEDED else messages.ERROR
    text = (
        f"Rollback #{rollback.pk} ({rollback.mode or '—'}) {rollback.status} in "
        f"{rollback.duration_seconds or 0:.2f} s. {rollback.error}"
    )
    return text.strip(), level


# --- Deployments, health, rollbacks, audit ------------------------------------------------


class DeploymentStatusInline(ReadOnlyInline):
    model = DeploymentStatus
    fields = ["moment", "state", "description"]
    readonly_fields = fields

    @admin.display(description="at")
    def moment(self, obj: DeploymentStatus) -> str:
        return when(obj.at)


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["id", "release", "environment", "slot", "state_badge", "run", "rollback"]
    list_filter = ["environment", "state"]
    list_select_related = ["release", "environment", "run", "rollback"]
    inlines = [DeploymentStatusInline]

    @admin.display(description="state")
    def state_badge(self, obj: Deployment) -> str:
        return badge(obj.state)


class RecentFilter(admin.SimpleListFilter):
    """Time windows that use the ``at`` index (cheaper than any date drill-down)."""

    title = "when"
    parameter_name = "within"
    WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        window = self.WINDOWS.get(self.value() or "")
        return queryset.filter(at__gte=timezone.now() - window) if window else queryset


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyAdmin):
    list_display = [
        "moment",
        "environment",
        "slot",
        "source",
        "result",
        "http_status",
        "latency_ms",
        "version",
        "error",
    ]
    list_filter = [RecentFilter, "environment", "ok", "source"]
    list_select_related = ["environment"]
    # A COUNT(*) over 100k+ rows per page view is what makes history admins slow.
    show_full_result_count = False
    list_per_page = 50

    @property
    def date_hierarchy(self) -> str | None:  # type: ignore[override]
        # SQLite truncates dates in Python, row by row: seconds on 100k rows. PostgreSQL
        # answers the drill-down from the index in milliseconds.
        return None if connection.vendor == "sqlite" else "at"

    @admin.display(description="at", ordering="at")
    def moment(self, obj: HealthCheck) -> str:
        return when(obj.at)

    @admin.display(description="result")
    def result(self, obj: HealthCheck) -> str:
        return badge(obj.status or ("ok" if obj.ok else "error"), "ok" if obj.ok else "failed")


@admin.register(Rollback)
class RollbackAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started",
        "environment",
        "from_release",
        "to_release",
        "trigger",
        "mode",
        "status_badge",
        "took",
        "actor_name",
        "reason",
    ]
    list_filter = ["environment", "trigger", "mode", "status"]
    list_select_related = ["environment", "from_release", "to_release"]

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: Rollback) -> str:
        return when(obj.started_at)

    @admin.display(description="status")
    def status_badge(self, obj: Rollback) -> str:
        return badge(obj.status)

    @admin.display(description="duration")
    def took(self, obj: Rollback) -> str:
        if obj.duration_seconds is None:
            return "—"
        if rollback_over_budget(obj):
            return format_html(
                "{} {}", f"{obj.duration_seconds:.2f} s", badge("over 1 min", "failed")
            )
        return f"{obj.duration_seconds:.2f} s"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["moment", "actor_name", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "action", "object_repr"]
    date_hierarchy = "at"
    show_full_result_count = False

    @admin.display(description="at", ordering="at")
    def moment(self, obj: AuditEvent) -> str:
        return when(obj.at)
