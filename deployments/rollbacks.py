"""Rollbacks: put the previous release back in front of traffic, by switching back to the
still-warm old slot (milliseconds) or by starting it again and cutting over after its health
gate. Every rollback is a ``Rollback`` row with its trigger, mode, duration and reason.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.adapters import Infrastructure, get_infrastructure
from deployments.models import (
    Deployment,
    DeploymentStatus,
    Environment,
    HealthCheck,
    HostRef,
    Release,
    Rollback,
    StageRun,
    other_slot,
)
from deployments.selectors import previous_release
from deployments.services import (
    DeploymentError,
    LockHeld,
    RollbackRefused,
    actor_label,
    audit_record,
    deployment_create,
    deployment_set_state,
    environment_cutover,
    environment_lock_acquire,
    environment_lock_release,
    health_probe_record,
    slot_health_url,
    user_or_none,
)

logger = logging.getLogger(__name__)

# The worker task that finishes a rollback's redeploy (queued by name: tasks import this).
ROLLBACK_TASK = "deployments.tasks.rollback_continue_task"


# --- Rollback -----------------------------------------------------------------------------


def rollback_target(*, environment: Environment) -> Release | None:
    """The release that served ``environment`` before the live one."""
    return previous_release(environment=environment)


# How long an automatic rollback is announced on the operators' pages.
AUTOMATIC_ROLLBACK_NOTICE = timedelta(hours=24)


def rollbacks_automatic_recent(*, run: Any = None) -> list[Rollback]:
    """Automatic rollbacks of the last ``AUTOMATIC_ROLLBACK_NOTICE`` (of ``run`` only, when
    given, then at any age), newest first."""
    found = Rollback.objects.filter(trigger=Rollback.Trigger.AUTOMATIC).select_related(
        "from_release", "environment"
    )
    if run is not None:
        found = found.filter(run=run)
    else:
        found = found.filter(started_at__gte=timezone.now() - AUTOMATIC_ROLLBACK_NOTICE)
    return list(found.order_by("-started_at", "-id"))


def rollback_banner(rollback: Rollback) -> str:
    """ "Automatic rollback of r7 at 10:12 UTC: 5xx 31 % > 5 % over 60 s"."""
    reason = rollback.reason.removeprefix("automatic: ")
    at = rollback.started_at.astimezone(UTC).strftime("%H:%M UTC")
    text = f"Automatic rollback of {rollback.from_release.label} at {at}: {reason}"
    if rollback.status != Rollback.Status.SUCCEEDED:
        text += f" (the rollback {rollback.status}: {rollback.error or 'see Rollbacks'})"
    return text


def releases_blocking_rollback(*, from_release: Release, to_release: Release) -> list[Release]:
    """Releases being undone whose migrations the older code cannot run against."""
    return list(
        Release.objects.filter(
            version__gt=to_release.version, version__lte=from_release.version, rollback_safe=False
        ).order_by("version")
    )


def rollback_start(
    *,
    environment: Environment,
    reason: str,
    actor: Any = None,
    actor_name: str = "",
    to_release: Release | None = None,
    confirm_unsafe: bool = False,
    trigger: str = Rollback.Trigger.MANUAL,
    run: Any = None,
    lock_holder: str | None = None,
    background: bool = False,
    infrastructure: Infrastructure | None = None,
) -> Rollback:
    """Puts the previous release back in front of traffic and returns the new ``Rollback``.

    Switches back to the warm old slot when it still runs the target release and answers
    healthy, otherwise starts the target in the idle slot and cuts over after its health gate.
    Refuses without ``confirm_unsafe`` when a release being undone is not rollback-safe.
    ``lock_holder`` is the lock the caller already holds (an aborting run); otherwise the
    rollback takes the environment's lock itself. With ``background`` (the admin), a redeploy
    is queued to a worker on commit and the rollback is returned still running; a switch-back
    always happens at once.
    """
    infrastructure = infrastructure or get_infrastructure()
    if not reason.strip():
        raise RollbackRefused("a rollback needs a reason")
    current = Environment.objects.select_related("live_release").get(pk=environment.pk)
    from_release = current.live_release
    if from_release is None or not current.live_slot:
        raise RollbackRefused(f"nothing is live in {current.name}")
    target = to_release or rollback_target(environment=current)
    if target is None:
        raise RollbackRefused(f"{current.name} has no earlier release to roll back to")
    if target.pk == from_release.pk:
        raise RollbackRefused(f"{target.label} is already live in {current.name}")
    blocking = releases_blocking_rollback(from_release=from_release, to_release=target)
    if blocking and not confirm_unsafe:
        listed = "; ".join(f"{r.label}: {r.rollback_unsafe_reason}" for r in blocking)
        raise RollbackRefused(
            f"not rollback-safe ({listed}); confirm explicitly to roll back anyway"
        )

    started = time.monotonic()
    if lock_holder is None and _lock_shared_with_rollback(current):
        # A run watching its release or waiting out its rollback window holds the lock; those
        # windows exist precisely so a rollback can switch back, and the analysis and cleanup
        # re-check the live release before going on.
        lock_holder = current.lock_holder
    owns_lock = lock_holder is None
    holder = lock_holder or f"rollback:{current.name}:{timezone.now():%H%M%S.%f}"
    if owns_lock:
        try:
            environment_lock_acquire(environments=[current], holder=holder)
        except LockHeld as error:
            raise RollbackRefused(str(error)) from None
    try:
        rollback = Rollback.objects.create(
            environment=current,
            from_release=from_release,
            to_release=target,
            trigger=trigger,
            run=run,
            reason=reason,
            actor=user_or_none(actor),
            actor_name=actor_label(actor, actor_name),
            confirmed_unsafe=bool(blocking),
        )
    except Exception:
        if owns_lock:
            environment_lock_release(environments=[current], holder=holder)
        raise
    audit_record(
        action="rollback.start",
        obj=rollback,
        actor=actor,
        actor_name=actor_name,
        details={"reason": reason, "trigger": trigger, "confirmed_unsafe": bool(blocking)},
    )
    try:
        deployment = _rollback_prepare(rollback, current, target, infrastructure)
    except Exception as error:
        logger.exception("rollback %s failed", rollback.pk)
        _rollback_finish(rollback, started, ok=False, error=str(error) or type(error).__name__)
        if owns_lock:
            environment_lock_release(environments=[current], holder=holder)
        _rollback_audit_end(rollback, actor, actor_name)
        return rollback
    if rollback.mode == Rollback.Mode.REDEPLOY and background:
        # Starting a release and waiting out its health gate takes seconds to minutes: a
        # worker does it, holding the lock this call took, once this transaction commits.
        transaction.on_commit(
            lambda: _rollback_send(rollback, holder=holder, release_lock=owns_lock)
        )
        return rollback
    rollback_continue(
        rollback=rollback,
        deployment=deployment,
        holder=holder,
        release_lock=owns_lock,
        actor=actor,
        actor_name=actor_name,
        infrastructure=infrastructure,
        started=started,
    )
    return rollback


def _rollback_send(rollback: Rollback, *, holder: str, release_lock: bool) -> None:
    from celery import current_app

    try:
        current_app.tasks[ROLLBACK_TASK].delay(rollback.pk, holder, release_lock)
    except Exception as error:
        logger.exception("rollback %s could not be queued", rollback.pk)
        rollback_continue_failed(
            rollback=rollback,
            holder=holder,
            release_lock=release_lock,
            error=f"could not be queued ({type(error).__name__}); the broker may be down",
        )


def rollback_continue_failed(
    *, rollback: Rollback, holder: str, release_lock: bool, error: str
) -> None:
    """Ends a rollback that never reached its worker: failed, its deployment failed, the lock
    it took freed."""
    for deployment in Deployment.objects.filter(rollback=rollback):
        deployment_set_state(deployment=deployment, state=Deployment.State.ERROR, description=error)
    _rollback_finish(rollback, None, ok=False, error=error)
    if release_lock:
        environment_lock_release(environments=[rollback.environment], holder=holder)
    _rollback_audit_end(rollback, None, "system")


def rollback_continue(
    *,
    rollback: Rollback,
    holder: str,
    release_lock: bool,
    deployment: Deployment | None = None,
    actor: Any = None,
    actor_name: str = "",
    infrastructure: Infrastructure | None = None,
    started: float | None = None,
) -> Rollback:
    """Finishes a prepared rollback: starts and health-gates the target when it is not warm,
    cuts over, records the outcome and frees the lock the rollback took (``release_lock``).

    Runs in the caller (a switch-back, the command line, an aborting run) or in a worker
    (``deployments.tasks.rollback_continue_task``, for the admin's redeploys)."""
    infrastructure = infrastructure or get_infrastructure()
    environment = Environment.objects.get(pk=rollback.environment_id)
    deployment = deployment or Deployment.objects.filter(rollback=rollback).first()
    # Race: a redelivered task and the first one; only one moves the deployment on.
    if deployment is None or not Deployment.objects.filter(
        pk=deployment.pk, state=Deployment.State.QUEUED
    ).update(state=Deployment.State.IN_PROGRESS):
        return rollback
    DeploymentStatus.objects.create(deployment=deployment, state=Deployment.State.IN_PROGRESS)
    deployment.state = Deployment.State.IN_PROGRESS
    try:
        if rollback.mode == Rollback.Mode.REDEPLOY:
            for host in environment.app_hosts():
                if not _warm_on(
                    host, environment, deployment.slot, rollback.to_release, infrastructure
                ):
                    _start_and_gate(
                        host, environment, deployment.slot, rollback.to_release, infrastructure
                    )
        environment_cutover(
            environment=environment,
            deployment=deployment,
            reason=f"rollback #{rollback.pk}: {rollback.reason}",
            actor=actor,
            actor_name=actor_name or rollback.actor_name,
            infrastructure=infrastructure,
        )
    except Exception as error:
        logger.exception("rollback %s failed", rollback.pk)
        deployment_set_state(
            deployment=deployment, state=Deployment.State.FAILURE, description=str(error)[:500]
        )
        _rollback_finish(rollback, started, ok=False, error=str(error) or type(error).__name__)
    else:
        _rollback_finish(rollback, started, ok=True)
    finally:
        if release_lock:
            environment_lock_release(environments=[environment], holder=holder)
    _rollback_audit_end(rollback, actor, actor_name or rollback.actor_name)
    return rollback


def _rollback_audit_end(rollback: Rollback, actor: Any, actor_name: str) -> None:
    audit_record(
        action=f"rollback.{rollback.status}",
        obj=rollback,
        actor=actor,
        actor_name=actor_name,
        details={"mode": rollback.mode, "seconds": rollback.duration_seconds},
    )


def _lock_shared_with_rollback(environment: Environment) -> bool:
    """True while the lock belongs to a run watching its release (its analysis) or waiting
    out its rollback window (its cleanup)."""
    holder, run_id = Environment.objects.values_list("lock_holder", "lock_run_id").get(
        pk=environment.pk
    )
    environment.lock_holder, environment.lock_run_id = holder, run_id
    if run_id is None:
        return False
    return StageRun.objects.filter(
        run_id=run_id, kind__in=["analysis", "cleanup"], outcome=StageRun.Outcome.RUNNING
    ).exists()


def _warm_on(
    host: HostRef,
    environment: Environment,
    slot: str,
    target: Release,
    infrastructure: Infrastructure,
) -> bool:
    """``slot`` on ``host`` still runs ``target`` and answers healthy right now."""
    running = infrastructure.slot_status(environment=environment.name, slot=slot, host=host)
    if running is None or running.version != target.label:
        return False
    return health_probe_record(
        environment=environment,
        slot=slot,
        source=HealthCheck.Source.ROLLBACK,
        url=slot_health_url(
            environment=environment, slot=slot, infrastructure=infrastructure, host=host
        ),
        expected_version=target.label,
        infrastructure=infrastructure,
    ).ok


def _rollback_prepare(
    rollback: Rollback, environment: Environment, target: Release, infrastructure: Infrastructure
) -> Deployment:
    """Decides switch-back or redeploy and records the rollback's deployment (queued).

    The warm old slot is health-checked on every host before anything else: a switch back
    happens only when it still runs the target and answers healthy everywhere; otherwise the
    hosts where it does not are redeployed (and gated) first."""
    old_slot = other_slot(environment.live_slot)
    warm = all(
        _warm_on(host, environment, old_slot, target, infrastructure)
        for host in environment.app_hosts()
    )
    mode = Rollback.Mode.SWITCH_BACK if warm else Rollback.Mode.REDEPLOY
    Rollback.objects.filter(pk=rollback.pk).update(mode=mode)
    rollback.mode = mode
    # Left queued: ``rollback_continue`` claims it (a redelivered task finds it taken).
    return deployment_create(
        release=target, environment=environment, slot=old_slot, rollback=rollback
    )


def _start_and_gate(
    host: HostRef,
    environment: Environment,
    slot: str,
    release: Release,
    infrastructure: Infrastructure,
) -> None:
    if infrastructure.slot_status(environment=environment.name, slot=slot, host=host):
        infrastructure.slot_stop(environment=environment.name, slot=slot, host=host)
    infrastructure.slot_start(
        environment=environment.name,
        slot=slot,
        port=host.port_of(slot),
        version=release.label,
        source_dir=infrastructure.release_source(git_sha=release.git_sha) if host.local else None,
        git_sha=release.git_sha,
        host=host,
    )
    attempts = int(settings.SWEDIFY_ROLLBACK_HEALTH_ATTEMPTS)
    delay = float(settings.SWEDIFY_ROLLBACK_HEALTH_DELAY_SECONDS)
    url = slot_health_url(
        environment=environment, slot=slot, infrastructure=infrastructure, host=host
    )
    for attempt in range(attempts):
        check = health_probe_record(
            environment=environment,
            slot=slot,
            source=HealthCheck.Source.ROLLBACK,
            url=url,
            expected_version=release.label,
            infrastructure=infrastructure,
        )
        if check.ok:
            return
        if attempt + 1 < attempts:
            infrastructure.sleep(delay)
    raise DeploymentError(
        f"{release.label} did not become healthy in {slot} on {host.address}: {check.error}"
    )


def _rollback_finish(
    rollback: Rollback, started: float | None, *, ok: bool, error: str = ""
) -> None:
    if started is not None:
        duration = round(time.monotonic() - started, 3)
    else:  # finished by a worker: counted from the row's creation
        duration = round((timezone.now() - rollback.started_at).total_seconds(), 3)
    status = Rollback.Status.SUCCEEDED if ok else Rollback.Status.FAILED
    # Race: none expected (one rollback row, one runner); the filter keeps a finish final.
    Rollback.objects.filter(pk=rollback.pk, status=Rollback.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), duration_seconds=duration, error=error[:2000]
    )
    rollback.refresh_from_db()
