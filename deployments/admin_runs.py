"""The operator's console for releases and pipeline runs: create a release from a commit (or
the current one), deploy it with one button, and follow its run on a page that updates
itself while stages run (``static/deployments/run_live.js``: same-origin, no inline script,
as the admin's Content-Security-Policy demands).

Durations leave out the time a run sat paused for an operator (and say how long that was);
times carry their time zone.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from deployments.adapters import get_infrastructure
from deployments.admin_common import (
    ConfirmForm,
    announce_automatic_rollbacks,
    confirm_page,
    queued_message,
    seconds_text,
    when,
)
from deployments.deploy_checks import deploy_refusal
from deployments.models import Environment, PipelineRun, Release, StageRun
from deployments.pipeline import (
    RUN_BUDGET_SECONDS,
    pipeline_definition,
    pipeline_run_abort,
    pipeline_run_create,
    pipeline_run_override,
    pipeline_run_promote,
    pipeline_run_retry,
)
from deployments.releases import (
    release_create_from_git,
    release_head_describe,
    release_ref_resolve,
)
from deployments.reports import run_over_budget, run_report_markdown
from deployments.rollbacks import rollbacks_automatic_recent
from deployments.services import DeploymentError
from swedify.admin_helpers import ReadOnlyInline, badge

# How often a run's page asks for itself again while the run is queued, running or paused.
LIVE_REFRESH_SECONDS = 3

# --- Releases -----------------------------------------------------------------------------


class ReleaseCreateForm(forms.ModelForm):
    commit = forms.CharField(
        initial="HEAD",
        max_length=200,
        help_text="HEAD (the current commit), a SHA, a branch or a tag of this repository.",
    )
    not_rollback_safe = forms.CharField(
        label="Not rollback-safe because",
        required=False,
        max_length=500,
        help_text="Leave empty unless the previous release cannot run against this one's "
        "database; contracting migrations are detected and marked on their own.",
    )

    class Meta:
        model = Release
        fields = ["commit", "notes", "not_rollback_safe"]

    def clean_commit(self) -> str:
        try:
            return release_ref_resolve(self.cleaned_data["commit"])
        except DeploymentError as error:
            raise forms.ValidationError(str(error)) from None


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Releases are created here (or by ``manage.py release_create``), never edited."""

    list_display = [
        "label",
        "git_sha_short",
        "created",
        "created_by_name",
        "safety",
        "deploy_button",
    ]
    search_fields = ["git_sha", "notes"]
    actions = ["deploy"]
    form = ReleaseCreateForm
    change_form_template = "admin/deployments/release/change_form.html"
    change_list_template = "admin/deployments/release/change_list.html"
    view_fields = ["label", "git_sha", "notes", "created", "created_by_name", "safety", "runs"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.view_fields if obj is not None else ["commit", "notes", "not_rollback_safe"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.view_fields if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None:
            form.base_fields["commit"].help_text = (
                "HEAD (the current commit: "
                f"{release_head_describe()}), a SHA, a branch or a tag of this repository."
            )
        return form

    def save_model(self, request: HttpRequest, obj: Release, form: Any, change: bool) -> None:
        # The service resolves the commit, inspects its migrations and allocates the version.
        release = release_create_from_git(
            ref=form.cleaned_data["commit"],
            notes=form.cleaned_data.get("notes", ""),
            not_rollback_safe=form.cleaned_data.get("not_rollback_safe", ""),
            actor=request.user,
        )
        for field in Release._meta.concrete_fields:
            setattr(obj, field.attname, getattr(release, field.attname))
        obj._state.adding = False

    def response_add(self, request: HttpRequest, obj: Release, post_url_continue: Any = None):
        safe = (
            "rollback-safe"
            if obj.rollback_safe
            else f"NOT rollback-safe: {obj.rollback_unsafe_reason}"
        )
        self.message_user(
            request,
            f"Release {obj.label} = {obj.git_sha[:12]} ({safe}). Deploy it with the button below.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:deployments_release_change", args=[obj.pk]))

    @admin.display(description="SHA")
    def git_sha_short(self, obj: Release) -> str:
        return obj.git_sha[:12]

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Release) -> str:
        return when(obj.created_at)

    @admin.display(description="rollback-safe")
    def safety(self, obj: Release) -> str:
        if obj.rollback_safe:
            return badge("safe", "ok")
        return format_html("{} {}", badge("not safe", "failed"), obj.rollback_unsafe_reason)

    @admin.display(description="")
    def deploy_button(self, obj: Release) -> str:
        url = reverse("admin:deployments_release_deploy", args=[obj.pk])
        return format_html('<a class="button" href="{}">Deploy {}…</a>', url, obj.label)

    @admin.display(description="pipeline runs")
    def runs(self, obj: Release) -> str:
        rows = obj.runs.order_by("-pk")[:10]
        return (
            format_html_join(
                ", ",
                '<a href="{}">#{} {}</a>',
                (
                    (reverse("admin:deployments_pipelinerun_change", args=[r.pk]), r.pk, r.status)
                    for r in rows
                ),
            )
            or "none yet"
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "head": release_head_describe()}
        return super().changelist_view(request, extra)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/deploy/", wrap(self.deploy_view), name="deployments_release_deploy"),
            *super().get_urls(),
        ]

    def deploy_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("deployments.add_pipelinerun"):
            raise PermissionDenied
        release = get_object_or_404(Release, pk=pk)
        page = reverse("admin:deployments_release_change", args=[release.pk])
        if request.method == "POST":
            try:
                run = pipeline_run_create(release=release, actor=request.user)
            except DeploymentError as error:
                self.message_user(request, str(error), messages.ERROR)
                return HttpResponseRedirect(page)
            self.message_user(request, queued_message(run), messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:deployments_pipelinerun_change", args=[run.pk])
            )
        live = {
            e.name: e for e in Environment.objects.select_related("live_release").order_by("name")
        }
        stages = [s.name for s in pipeline_definition() if s.enabled]
        # This web process usually shares the worker's settings: what would stop the run
        # at its first slot is worth saying before it is queued.
        refusal = deploy_refusal(
            environments=list(live.values()), infrastructure=get_infrastructure()
        )
        return confirm_page(
            request,
            self.admin_site,
            title=f"Deploy {release}",
            facts=[
                ("release", f"{release} — {release.notes or 'no notes'}"),
                *((f"{name} serves now", e.live_release or "nothing") for name, e in live.items()),
                ("rollback-safe", release.rollback_unsafe_reason or "yes"),
                ("the pipeline", " → ".join(stages)),
                (
                    "check",
                    f"⚠ {refusal}" if refusal else "the slots' settings and HAProxy are in place",
                ),
            ],
            form=None,
            button=f"Deploy {release.label}",
            cancel_url=page,
        )

    @admin.action(description="Deploy the selected release (queues the pipeline)")
    def deploy(self, request: HttpRequest, queryset: QuerySet[Release]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one release.", messages.ERROR)
            return
        if not request.user.has_perm("deployments.add_pipelinerun"):
            raise PermissionDenied
        release = queryset.get()
        try:
            run = pipeline_run_create(release=release, actor=request.user)
        except DeploymentError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, queued_message(run), messages.SUCCESS)


# --- Pipeline runs ------------------------------------------------------------------------


class StageRunInline(ReadOnlyInline):
    model = StageRun
    fields = [
        "position",
        "name",
        "failure_action",
        "outcome_badge",
        "action_applied",
        "tries",
        "started",
        "duration",
        "summary",
        "override",
        "captured_log",
    ]
    readonly_fields = fields

    @admin.display(description="outcome")
    def outcome_badge(self, obj: StageRun) -> str:
        return badge(obj.outcome)

    @admin.display(description="attempts")
    def tries(self, obj: StageRun) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="started")
    def started(self, obj: StageRun) -> str:
        return when(obj.started_at)

    @admin.display(description="duration")
    def duration(self, obj: StageRun) -> str:
        if obj.outcome == StageRun.Outcome.RUNNING and obj.started_at:
            return f"{seconds_text((timezone.now() - obj.started_at).total_seconds())} so far"
        return seconds_text(obj.duration_seconds)

    @admin.display(description="override")
    def override(self, obj: StageRun) -> str:
        if not obj.override_reason:
            return ""
        return f"{obj.overridden_by or '?'}: {obj.override_reason}"

    @admin.display(description="log")
    def captured_log(self, obj: StageRun) -> str:
        if not obj.log:
            return ""
        return format_html("<details><summary>log</summary><pre>{}</pre></details>", obj.log)


def run_took(run: PipelineRun) -> str:
    """The run's working time, and, when it sat paused for an operator, that too: ``4 min
    12 s (+ 18 min 03 s paused, 22 min 15 s in all)``."""
    active = run.active_seconds
    if active is None:
        return "not started"
    text = seconds_text(active)
    if run.status in PipelineRun.ACTIVE:
        text += " so far"
    paused = run.paused_seconds
    if paused >= 0.05:
        end = run.finished_at or timezone.now()
        total = (end - run.started_at).total_seconds()
        text += f" (+ {seconds_text(paused)} paused, {seconds_text(total)} in all)"
    if run_over_budget(run):
        return format_html("{} {}", text, badge(f"over {RUN_BUDGET_SECONDS // 60} min", "failed"))
    return text


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = ["id", "release", "status_badge", "triggered_by_name", "started", "took"]
    list_filter = ["status"]
    list_select_related = ["release"]
    inlines = [StageRunInline]
    change_form_template = "admin/deployments/pipelinerun/change_form.html"
    fields = [
        "release",
        "status_badge",
        "triggered_by_name",
        "created",
        "started",
        "finished",
        "took",
        "warning_list",
        "error",
        "operator_actions",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status")
    def status_badge(self, obj: PipelineRun) -> str:
        return badge(obj.status)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: PipelineRun) -> str:
        return when(obj.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: PipelineRun) -> str:
        return when(obj.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: PipelineRun) -> str:
        return when(obj.finished_at)

    @admin.display(description="duration (without pauses)")
    def took(self, obj: PipelineRun) -> str:
        return run_took(obj)

    @admin.display(description="warnings")
    def warning_list(self, obj: PipelineRun) -> str:
        return format_html_join("", "<div>⚠ {}</div>", ((w,) for w in obj.warnings)) or "none"

    @admin.display(description="operator")
    def operator_actions(self, obj: PipelineRun) -> str:
        links = [("report.md", "Download report")]
        if obj.status == PipelineRun.Status.PAUSED:
            links += [("retry", "Retry the blocked stage"), ("override", "Override…")]
        analysing = obj.stages.filter(kind="analysis", outcome=StageRun.Outcome.RUNNING)
        if obj.status == PipelineRun.Status.RUNNING and analysing.exists():
            links += [("promote", "Promote now…"), ("rollback", "Roll back now…")]
        if obj.status in PipelineRun.ACTIVE:
            links.append(("abort", "Abort…"))
        base = reverse("admin:deployments_pipelinerun_change", args=[obj.pk]).rsplit("change/")[0]
        return format_html_join(
            " · ", '<a href="{}{}/">{}</a>', ((base, suffix, text) for suffix, text in links)
        )

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/report.md/", wrap(self.report_view), name="deployments_run_report"),
            path("<int:pk>/retry/", wrap(self.retry_view), name="deployments_run_retry"),
            path("<int:pk>/override/", wrap(self.override_view), name="deployments_run_override"),
            path("<int:pk>/abort/", wrap(self.abort_view), name="deployments_run_abort"),
            path("<int:pk>/promote/", wrap(self.promote_view), name="deployments_run_promote"),
            path("<int:pk>/rollback/", wrap(self.rollback_view), name="deployments_run_rollback"),
            *super().get_urls(),
        ]

    def _run(self, request: HttpRequest, pk: int, *, operate: bool) -> PipelineRun:
        needed = "deployments.add_pipelinerun" if operate else "deployments.view_pipelinerun"
        if not request.user.has_perm(needed):
            raise PermissionDenied
        return get_object_or_404(PipelineRun.objects.select_related("release"), pk=pk)

    def _page(self, run: PipelineRun) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:deployments_pipelinerun_change", args=[run.pk]))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if run is not None:
            announce_automatic_rollbacks(request, rollbacks_automatic_recent(run=run))
            # The page asks for itself again while something can still change on it.
            if run.status in PipelineRun.ACTIVE:
                extra["live_refresh_ms"] = LIVE_REFRESH_SECONDS * 1000
        return super().change_view(request, object_id, form_url, extra)

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk, operate=True)
        form = ConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                pipeline_run_promote(
                    run=run, reason=form.cleaned_data["reason"], actor=request.user
                )
            except DeploymentError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Run #{run.pk}: the analysis window ends at its next look; cleanup follows.",
                    messages.SUCCESS,
                )
            return self._page(run)
        return confirm_page(
            request,
            self.admin_site,
            title=f"Promote {run.release} now (end run #{run.pk}'s analysis window)",
            facts=[
                ("release", run.release),
                ("after this", "no automatic rollback; cleanup stops the old slots"),
            ],
            form=ConfirmForm(initial={"reason": "promoted"}) if request.method != "POST" else form,
            button="Promote now",
            cancel_url=self._page(run).url,
        )

    def rollback_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """ "Roll back now" is the environment's manual rollback (it ends the window too)."""
        run = self._run(request, pk, operate=True)
        cutover = run.context.get("cutover") or {}
        environment = get_object_or_404(Environment, name=cutover.get("environment", ""))
        return HttpResponseRedirect(reverse("admin:deployments_rollback", args=[environment.pk]))

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk, operate=False)
        response = HttpResponse(run_report_markdown(run), content_type="text/markdown")
        response["Content-Disposition"] = f'attachment; filename="deployment-run-{run.pk}.md"'
        return response

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk, operate=True)
        if request.method != "POST":
            form = ConfirmForm(initial={"reason": "retry"})
            return confirm_page(
                request,
                self.admin_site,
                title=f"Retry the blocked stage of run #{run.pk}",
                facts=[("release", run.release), ("status", run.status)],
                form=form,
                button="Retry",
                cancel_url=self._page(run).url,
            )
        try:
            pipeline_run_retry(run=run, actor=request.user)
        except DeploymentError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, queued_message(run), messages.SUCCESS)
        return self._page(run)

    def override_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk, operate=True)
        form = ConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                pipeline_run_override(
                    run=run, reason=form.cleaned_data["reason"], actor=request.user
                )
            except DeploymentError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, queued_message(run), messages.SUCCESS)
            return self._page(run)
        blocked = run.stages.filter(action_applied="block", outcome="failed").last()
        return confirm_page(
            request,
            self.admin_site,
            title=f"Override the blocked stage of run #{run.pk}",
            facts=[
                ("release", run.release),
                ("blocked stage", blocked or "none"),
                ("its failure", blocked.summary if blocked else ""),
            ],
            form=form,
            button="Override and continue",
            cancel_url=self._page(run).url,
        )

    def abort_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = self._run(request, pk, operate=True)
        form = ConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                pipeline_run_abort(run=run, reason=form.cleaned_data["reason"], actor=request.user)
            except DeploymentError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Run #{run.pk} {run.status}.", messages.SUCCESS)
            return self._page(run)
        moved = bool(run.context.get("cutover"))
        return confirm_page(
            request,
            self.admin_site,
            title=f"Abort run #{run.pk}",
            facts=[
                ("release", run.release),
                ("status", run.status),
                ("traffic moved", "yes: it will be switched back" if moved else "no"),
            ],
            form=form,
            button="Abort the run",
            cancel_url=self._page(run).url,
        )
