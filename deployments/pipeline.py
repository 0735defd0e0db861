"""The deploy pipeline: stage definitions as data and the runner that executes them.

``PIPELINE`` is the designed order (quality checks → security scan → staging deploy → staging
health → production deploy → production health → cutover → cleanup) with the analysis after
the cutover (a window watching the new release, which switches back automatically when it
crosses a threshold; ``pipeline_run_promote`` ends it early); each stage's failure
action, attempts, delay, timeout and parameters are copied onto its ``StageRun`` when a run is
created, so a run keeps the definition it started with. ``SWEDIFY_PIPELINE_OVERRIDES`` (a dict
of stage key → field values, ``params`` merged) adjusts it, e.g. tiny delays in tests.

Failure actions (Spinnaker's): ``block`` pauses the run for an operator (retry, override with a
reason, or abort); ``continue`` records a warning and goes on; ``abort`` halts the run and, if
this run already moved traffic, switches back at once and records an automatic rollback;
``skip`` records the stage as failed-and-skipped with a warning and goes on (stages that need
its effect then do nothing). A stage disabled in the definition is not run at all.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from deployments.adapters import Infrastructure, get_infrastructure
from deployments.analysis import (
    ANALYSIS_INTERVAL_SECONDS,
    ANALYSIS_WINDOW_SECONDS,
    MAX_5XX_SHARE,
    MAX_RESPONSE_MS,
    MIN_RESPONSES,
)
from deployments.models import (
    Deployment,
    Environment,
    FailureAction,
    PipelineRun,
    Release,
    Rollback,
    StageRun,
)
from deployments.rollbacks import rollback_start
from deployments.services import (
    LOCK_STALE_AFTER,
    DeploymentError,
    audit_record,
    deployment_set_state,
    environment_lock_acquire,
    environment_lock_release,
)
from deployments.stages import HANDLERS, LOG_LIMIT, StageResult, run_context_update

logger = logging.getLogger(__name__)

# The deploy-time SLA: a slower run is flagged in the report and the admin.
RUN_BUDGET_SECONDS = 5 * 60
# The worker task that executes a queued run (queued by name: the tasks module imports this).
PIPELINE_TASK = "deployments.tasks.pipeline_run_task"


@dataclass(frozen=True)
class StageDefinition:
    key: str
    name: str
    kind: str  # which handler runs it: commands, deploy, health, cutover, analysis, cleanup
    failure_action: str
    max_attempts: int = 1
    delay_seconds: float = 0.0
    timeout_seconds: float = 600.0
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)


def _security_commands() -> list[str]:
    # pip-audit needs its vulnerability service; without pip-audit, pip's own consistency
    # check is the fallback so the stage still says something about the dependencies.
    if importlib.util.find_spec("pip_audit") is not None:
        return ["{python} -m pip_audit --local --progress-spinner off"]
    return ["{python} -m pip check"]


PIPELINE: list[StageDefinition] = [
    StageDefinition(
        "quality",
        "Quality checks",
        "commands",
        FailureAction.BLOCK,
        # The release's own unit and sandbox tests: about three minutes on two idle cores
        # (1,200 tests), twice that on a busy machine; a pass is reused for the same files.
        timeout_seconds=600,
        params={
            "commands": [
                "{python} -m ruff check .",
                "{python} manage.py makemigrations --check --dry-run",
                "{python} -m pytest -q -x -m 'not integration and not browser'",
            ],
            # A pass for the same files, commands and packages is reused (deployments.gate).
            "reuse_passed": True,
        },
    ),
    StageDefinition(
        "security",
        "Security scan",
        "commands",
        FailureAction.CONTINUE,
        timeout_seconds=120,
        params={"commands": _security_commands()},
    ),
    StageDefinition(
        "staging_deploy",
        "Staging deploy",
        "deploy",
        FailureAction.BLOCK,
        timeout_seconds=60,
        params={"environment": "staging"},
    ),
    StageDefinition(
        "staging_health",
        "Staging health",
        "health",
        FailureAction.BLOCK,
        max_attempts=3,
        delay_seconds=5,
        params={"environment": "staging", "promote": True},
    ),
    StageDefinition(
        "production_deploy",
        "Production deploy",
        "deploy",
        FailureAction.ABORT,
        timeout_seconds=60,
        params={"environment": "production"},
    ),
    StageDefinition(
        "production_health",
        "Production health",
        "health",
        FailureAction.ABORT,
        max_attempts=5,
        delay_seconds=5,
        params={"environment": "production", "promote": False},
    ),
    StageDefinition(
        "cutover",
        "Traffic cutover",
        "cutover",
        FailureAction.SKIP,
        params={"environment": "production"},
    ),
    StageDefinition(
        "analysis",
        "Post-promotion analysis",
        "analysis",
        # A failed analysis has already switched back; abort ends the run as failed (and
        # switches back itself if the analysis broke before it could).
        FailureAction.ABORT,
        # Never the limit on the window: it is only recorded on the stage.
        timeout_seconds=ANALYSIS_WINDOW_SECONDS + 60,
        params={
            "window_seconds": ANALYSIS_WINDOW_SECONDS,
            "interval_seconds": ANALYSIS_INTERVAL_SECONDS,
            "max_5xx_share": MAX_5XX_SHARE,
            "max_response_ms": MAX_RESPONSE_MS,
            "min_responses": MIN_RESPONSES,
        },
    ),
    StageDefinition(
        "cleanup",
        "Cleanup",
        "cleanup",
        FailureAction.SKIP,
        # rollback_window_seconds comes from SWEDIFY_ROLLBACK_WINDOW_SECONDS when the run is
        # created (pipeline_definition), unless an override names it.
        params={"environments": ["staging", "production"], "drain_seconds": 5},
    ),
]


def pipeline_definition() -> list[StageDefinition]:
    """``PIPELINE`` with the settings it reads (the rollback window) and
    ``SWEDIFY_PIPELINE_OVERRIDES`` applied."""
    overrides: dict[str, dict[str, Any]] = settings.SWEDIFY_PIPELINE_OVERRIDES
    unknown = set(overrides) - {stage.key for stage in PIPELINE}
    if unknown:
        raise DeploymentError(f"SWEDIFY_PIPELINE_OVERRIDES names unknown stages: {unknown}")
    result = []
    setting_params = {
        "cleanup": {"rollback_window_seconds": settings.SWEDIFY_ROLLBACK_WINDOW_SECONDS}
    }
    for stage in PIPELINE:
        values = asdict(stage)
        values["params"] = {**values["params"], **setting_params.get(stage.key, {})}
        for name, value in overrides.get(stage.key, {}).items():
            if name == "params":
                values["params"] = {**values["params"], **value}
            elif name in values and name not in {"key", "kind"}:
                values[name] = value
            else:
                raise DeploymentError(f"cannot override {name!r} of stage {stage.key}")
        if values["failure_action"] not in FailureAction.values:
            raise DeploymentError(f"{values['failure_action']!r} is not a failure action")
        result.append(StageDefinition(**values))
    return result


# --- Creating runs and operator actions ---------------------------------------------------


def pipeline_run_create(
    *, release: Release, actor: Any = None, actor_name: str = "", queue: bool = True
) -> PipelineRun:
    """Creates a queued run holding the deploy lock of every environment it deploys to;
    raises ``LockHeld`` (and creates nothing) while another run or rollback holds one.

    With ``queue`` (the default) a worker is handed the run once this transaction commits;
    without it the caller executes the run itself (``manage.py deploy`` in the foreground)."""
    definition = pipeline_definition()
    environments = {e.name: e for e in Environment.objects.all()}
    if Environment.Name.PRODUCTION not in environments:
        raise DeploymentError(
            "no production environment is configured; run manage.py environment_configure"
        )
    with transaction.atomic():
        run = PipelineRun.objects.create(
            release=release,
            triggered_by=actor if actor is not None and getattr(actor, "pk", None) else None,
            triggered_by_name=actor_name or (actor.get_username() if actor else "system"),
        )
        used = []
        for position, stage in enumerate(definition):
            names = _stage_environments(stage)
            missing = [name for name in names if name not in environments]
            enabled = stage.enabled and not (missing and stage.kind in {"deploy", "health"})
            summary = ""
            if stage.enabled and not enabled:
                summary = f"not run: no {', '.join(missing)} environment is configured"
            elif not stage.enabled:
                summary = "not run: disabled in the pipeline definition"
            if enabled:
                used += [environments[n] for n in names if n in environments]
            StageRun.objects.create(
                run=run,
                key=stage.key,
                name=stage.name,
                kind=stage.kind,
                position=position,
                failure_action=stage.failure_action,
                enabled=enabled,
                max_attempts=stage.max_attempts,
                delay_seconds=stage.delay_seconds,
                timeout_seconds=stage.timeout_seconds,
                params=copy.deepcopy(stage.params),
                summary=summary,
            )
        locked = sorted({e.pk: e for e in used}.values(), key=lambda e: e.name)
        run.environments.set(locked)
        environment_lock_acquire(environments=locked, holder=run.lock_name, run=run)
        audit_record(
            action="run.create",
            obj=run,
            actor=actor,
            actor_name=actor_name,
            details={"release": release.label, "environments": [e.name for e in locked]},
        )
        if queue:
            pipeline_run_enqueue(run=run)
    return run


def pipeline_run_enqueue(*, run: PipelineRun) -> None:
    """Hands ``run`` to a worker when the current transaction commits (at once outside
    one), so a worker never looks for a run it cannot see yet. A broker outage is recorded
    as a warning on the run; the run stays queued for ``manage.py deploy --resume``."""
    transaction.on_commit(lambda: _send(run))


def _send(run: PipelineRun) -> None:
    from celery import current_app

    try:
        current_app.tasks[PIPELINE_TASK].delay(run.pk)
    except Exception as error:
        logger.exception("run %s could not be queued", run.pk)
        _warn(
            run,
            f"could not be queued ({type(error).__name__}): the broker may be down; "
            f"`manage.py deploy --resume {run.pk}` runs it here",
        )


def _stage_environments(stage: StageDefinition | StageRun) -> list[str]:
    params = stage.params
    if "environment" in params:
        return [params["environment"]]
    return list(params.get("environments", []))


def _paused_stage(run: PipelineRun) -> StageRun:
    stage = run.stages.filter(outcome=StageRun.Outcome.FAILED, action_applied="block").last()
    if stage is None:
        raise DeploymentError(f"run #{run.pk} has no blocked stage")
    return stage


def pipeline_run_retry(*, run: PipelineRun, actor: Any = None, actor_name: str = "") -> None:
    """Re-runs the blocked stage of a paused run (queued again on commit)."""
    stage = _paused_stage(run)
    with transaction.atomic():
        # Race: two operators acting on the same paused run; only one moves it.
        if not PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.Status.PAUSED).update(
            status=PipelineRun.Status.QUEUED
        ):
            raise DeploymentError(f"run #{run.pk} is not paused")
        _pause_end(run)
        StageRun.objects.filter(pk=stage.pk).update(
            outcome=StageRun.Outcome.PENDING,
            action_applied=StageRun.Applied.RETRY,
            attempts=0,
        )
        audit_record(
            action="run.retry",
            obj=run,
            actor=actor,
            actor_name=actor_name,
            details={"stage": stage.key},
        )
        pipeline_run_enqueue(run=run)
    run.status = PipelineRun.Status.QUEUED


def pipeline_run_override(
    *, run: PipelineRun, reason: str, actor: Any = None, actor_name: str = ""
) -> None:
    """Accepts the blocked stage's failure and lets the run go on (queued again on commit)."""
    if not reason.strip():
        raise DeploymentError("an override needs a reason")
    stage = _paused_stage(run)
    with transaction.atomic():
        # Race: two operators acting on the same paused run; only one moves it.
        if not PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.Status.PAUSED).update(
            status=PipelineRun.Status.QUEUED
        ):
            raise DeploymentError(f"run #{run.pk} is not paused")
        _pause_end(run)
        StageRun.objects.filter(pk=stage.pk).update(
            action_applied=StageRun.Applied.OVERRIDE,
            overridden_by=actor if actor is not None and getattr(actor, "pk", None) else None,
            override_reason=reason,
        )
        audit_record(
            action="run.override",
            obj=run,
            actor=actor,
            actor_name=actor_name,
            details={"stage": stage.key, "reason": reason},
        )
        pipeline_run_enqueue(run=run)
    run.status = PipelineRun.Status.QUEUED


def pipeline_run_promote(
    *, run: PipelineRun, reason: str = "", actor: Any = None, actor_name: str = ""
) -> None:
    """Ends the running analysis window of ``run`` early: the release is kept (the stage
    reads the flag at its next look, within its interval) and the run goes on to cleanup."""
    with transaction.atomic():
        # Race: the window may end (or a verdict come) while the operator confirms; only a
        # run still analysing is promoted, and a second promote changes nothing.
        locked = PipelineRun.objects.select_for_update().get(pk=run.pk)
        analysing = locked.stages.filter(kind="analysis", outcome=StageRun.Outcome.RUNNING).exists()
        if locked.status != PipelineRun.Status.RUNNING or not analysing:
            raise DeploymentError(f"run #{run.pk} is not in its analysis window")
        if locked.context.get("promoted"):
            return
        promoted = {
            "by": actor_name or getattr(actor, "username", "") or "an operator",
            "at": timezone.now().isoformat(),
        }
        locked.context = {**locked.context, "promoted": promoted}
        PipelineRun.objects.filter(pk=run.pk).update(context=locked.context)
        audit_record(
            action="run.promote",
            obj=run,
            actor=actor,
            actor_name=actor_name,
            details={"reason": reason} if reason else {},
        )
    run.context = locked.context


def pipeline_run_abort(
    *,
    run: PipelineRun,
    reason: str,
    actor: Any = None,
    actor_name: str = "",
    infrastructure: Infrastructure | None = None,
) -> PipelineRun:
    """Ends a queued or paused run, or a running one stuck for longer than
    ``LOCK_STALE_AFTER`` (its worker died); switches back if it already moved traffic."""
    if not reason.strip():
        raise DeploymentError("aborting a run needs a reason")
    # Race: the worker may pick the run up while the operator confirms; only one wins.
    claimed = PipelineRun.objects.filter(
        pk=run.pk, status__in=[PipelineRun.Status.QUEUED, PipelineRun.Status.PAUSED]
    ).update(status=PipelineRun.Status.RUNNING)
    if not claimed:
        # Race: two operators aborting the same stuck run; setting finished_at claims it.
        claimed = PipelineRun.objects.filter(
            pk=run.pk,
            status=PipelineRun.Status.RUNNING,
            finished_at__isnull=True,
            started_at__lt=timezone.now() - LOCK_STALE_AFTER,
        ).update(finished_at=timezone.now())
    if not claimed:
        minutes = int(LOCK_STALE_AFTER.total_seconds() // 60)
        raise DeploymentError(
            f"run #{run.pk} is neither queued, paused nor running for over {minutes} minutes"
        )
    run.refresh_from_db()
    audit_record(
        action="run.abort", obj=run, actor=actor, actor_name=actor_name, details={"reason": reason}
    )
    _halt(
        run,
        status=PipelineRun.Status.ABORTED,
        reason=f"aborted by {actor_name or getattr(actor, 'username', 'an operator')}: {reason}",
        infrastructure=infrastructure or get_infrastructure(),
    )
    return run


# --- The runner ---------------------------------------------------------------------------


def pipeline_run_execute(
    *, run_id: int, infrastructure: Infrastructure | None = None
) -> PipelineRun | None:
    """Runs a queued run's pending stages in order until it finishes, pauses or aborts.

    Idempotent: a second delivery of the same task finds the run no longer queued."""
    infrastructure = infrastructure or get_infrastructure()
    now = timezone.now()
    # Race: a redelivered task (acks_late) and the first one; only one claims the run.
    claimed = PipelineRun.objects.filter(pk=run_id, status=PipelineRun.Status.QUEUED).update(
        status=PipelineRun.Status.RUNNING, started_at=Coalesce(F("started_at"), now)
    )
    run = PipelineRun.objects.select_related("release").filter(pk=run_id).first()
    if not claimed or run is None:
        return run
    for stage in run.stages.filter(outcome=StageRun.Outcome.PENDING).order_by("position"):
        if not stage.enabled:
            _stage_finish(stage, StageRun.Outcome.SKIPPED, StageRun.Applied.SKIP, stage.summary)
            continue
        result = _stage_execute(run, stage, infrastructure)
        if result.ok:
            _stage_finish(stage, StageRun.Outcome.SUCCEEDED, None, result.summary, result.log)
            continue
        action = stage.failure_action
        _stage_finish(stage, StageRun.Outcome.FAILED, action, result.summary, result.log)
        if action == FailureAction.BLOCK:
            # Recorded before the pause is visible: an operator's retry ends a known pause.
            run_context_update(run, paused_at=timezone.now().isoformat())
            PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.Status.RUNNING).update(
                status=PipelineRun.Status.PAUSED
            )
            audit_record(
                action="run.pause",
                obj=run,
                actor_name="pipeline",
                details={"stage": stage.key, "summary": result.summary},
            )
            run.refresh_from_db()
            return run
        if action in {FailureAction.CONTINUE, FailureAction.SKIP}:
            verb = "continued" if action == FailureAction.CONTINUE else "skipped"
            _warn(run, f"{stage.name} failed ({verb}): {result.summary}")
            continue
        _halt(
            run,
            status=PipelineRun.Status.FAILED,
            reason=f"{stage.name} failed: {result.summary}",
            infrastructure=infrastructure,
            # GitHub's distinction: "error" when the tooling broke, "failure" when the release did.
            deployment_state=Deployment.State.ERROR
            if result.tooling_error
            else Deployment.State.FAILURE,
        )
        return run
    _finish(run, PipelineRun.Status.SUCCEEDED)
    return run


def _stage_execute(
    run: PipelineRun, stage: StageRun, infrastructure: Infrastructure
) -> StageResult:
    StageRun.objects.filter(pk=stage.pk).update(
        outcome=StageRun.Outcome.RUNNING, started_at=timezone.now(), finished_at=None
    )
    handler = HANDLERS[_kind_of(stage)]
    logs = []
    result = StageResult(False, "not run")
    for attempt in range(1, stage.max_attempts + 1):
        StageRun.objects.filter(pk=stage.pk).update(attempts=attempt)
        stage.attempts = attempt
        try:
            result = handler(run, stage, infrastructure)
        except Exception as error:
            logger.exception("stage %s of run %s raised", stage.key, run.pk)
            result = StageResult(
                False, f"{type(error).__name__}: {error}"[:500], tooling_error=True
            )
        logs.append(
            f"--- attempt {attempt}/{stage.max_attempts}: "
            f"{'ok' if result.ok else 'failed'}: {result.summary}\n{result.log}".rstrip()
        )
        if result.ok:
            break
        if attempt < stage.max_attempts:
            infrastructure.sleep(stage.delay_seconds)
    result.log = "\n".join(logs)
    return result


def _kind_of(stage: StageRun) -> str:
    """The kind the run was created with; rows of an older release have none recorded."""
    if stage.kind:
        return stage.kind
    for definition in PIPELINE:
        if definition.key == stage.key:
            return definition.kind
    raise DeploymentError(f"unknown stage {stage.key}")


def _stage_finish(
    stage: StageRun, outcome: str, action: str | None, summary: str, log: str = ""
) -> None:
    values: dict[str, Any] = {
        "outcome": outcome,
        "summary": summary[:2000],
        "finished_at": timezone.now(),
    }
    if stage.started_at is None and outcome == StageRun.Outcome.SKIPPED:
        values["started_at"] = values["finished_at"]
    if action is not None:
        values["action_applied"] = action
    if log:
        previous = StageRun.objects.values_list("log", flat=True).get(pk=stage.pk)
        values["log"] = (f"{previous}\n{log}" if previous else log)[-LOG_LIMIT:]
    StageRun.objects.filter(pk=stage.pk).update(**values)


def _warn(run: PipelineRun, text: str) -> None:
    run.refresh_from_db(fields=["warnings"])
    run.warnings = [*run.warnings, text]
    PipelineRun.objects.filter(pk=run.pk).update(warnings=run.warnings)


def _pause_end(run: PipelineRun) -> None:
    """Adds the pause that ends now (retry, override, abort) to the run's paused time."""
    run.refresh_from_db(fields=["context"])
    opened = run.context.get("paused_at")
    if not opened:
        return
    paused = (timezone.now() - datetime.fromisoformat(opened)).total_seconds()
    context = {k: v for k, v in run.context.items() if k != "paused_at"}
    context["paused_seconds"] = float(context.get("paused_seconds", 0.0)) + max(0.0, paused)
    run.context = context
    PipelineRun.objects.filter(pk=run.pk).update(context=context)


def _finish(run: PipelineRun, status: str, error: str = "") -> None:
    _pause_end(run)
    # Race: an operator abort and the runner's own end; the first terminal status stays.
    PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), error=error[:2000]
    )
    environment_lock_release(
        environments=list(run.environments.all()), holder=run.lock_name, run=run
    )
    audit_record(
        action=f"run.{status}",
        obj=run,
        actor_name="pipeline",
        details={"error": error} if error else {},
    )
    run.refresh_from_db()


def _halt(
    run: PipelineRun,
    *,
    status: str,
    reason: str,
    infrastructure: Infrastructure,
    deployment_state: str = Deployment.State.FAILURE,
) -> None:
    """Stops a run: the rest is not run, unfinished deployments fail, and traffic this run
    moved goes back to where it was (an automatic rollback) before the lock is freed."""
    StageRun.objects.filter(run=run, outcome=StageRun.Outcome.PENDING).update(
        outcome=StageRun.Outcome.SKIPPED, summary="not run: the run stopped"
    )
    # Only a run whose worker died has a stage still marked running.
    StageRun.objects.filter(run=run, outcome=StageRun.Outcome.RUNNING).update(
        outcome=StageRun.Outcome.FAILED,
        action_applied=StageRun.Applied.ABORT,
        summary="interrupted: its worker stopped",
        finished_at=timezone.now(),
    )
    for deployment in Deployment.objects.filter(
        run=run, state__in=[Deployment.State.QUEUED, Deployment.State.IN_PROGRESS]
    ):
        deployment_set_state(
            deployment=deployment, state=deployment_state, description=reason[:500]
        )
    run.refresh_from_db(fields=["context"])
    cutover = run.context.get("cutover")
    if cutover:
        environment = Environment.objects.get(name=cutover["environment"])
        if environment.live_release_id == run.release_id and cutover.get("previous_release"):
            try:
                rollback = rollback_start(
                    environment=environment,
                    reason=reason,
                    actor_name="pipeline",
                    to_release=Release.objects.get(pk=cutover["previous_release"]),
                    # The failing release is already live; going back is the lesser risk.
                    confirm_unsafe=True,
                    trigger=Rollback.Trigger.AUTOMATIC,
                    run=run,
                    lock_holder=run.lock_name,
                    infrastructure=infrastructure,
                )
                _warn(
                    run,
                    f"switched back automatically: rollback #{rollback.pk} "
                    f"{rollback.status} ({rollback.mode})",
                )
            except DeploymentError as error:
                _warn(run, f"automatic switch-back refused: {error}")
    _finish(run, status, reason)
