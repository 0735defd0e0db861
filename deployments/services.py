"""State changes of the deployments app: releases, the deploy lock, deployments and their
statuses, cutovers, health probe records, rollbacks and the audit trail.

Every transition is compare-and-set; every one an operator causes leaves an ``AuditEvent``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from deployments.adapters import Infrastructure, get_infrastructure
from deployments.models import (
    AuditEvent,
    Deployment,
    DeploymentStatus,
    Environment,
    HealthCheck,
    PipelineRun,
    Release,
    Rollback,
    StageRun,
    other_slot,
)

logger = logging.getLogger(__name__)

# The seed's SLA: a rollback that takes longer is flagged in the admin and the report.
ROLLBACK_BUDGET = timedelta(minutes=1)
# A lock older than this may be broken by an operator (with a reason); a younger one only by
# finishing or aborting its run.
LOCK_STALE_AFTER = timedelta(minutes=30)
# The worker task that finishes a rollback's redeploy (queued by name: tasks import services).
ROLLBACK_TASK = "deployments.tasks.rollback_continue_task"


class DeploymentError(Exception):
    """A refused or failed operation; the message is shown to the operator as is."""


class LockHeld(DeploymentError):
    pass


class RollbackRefused(DeploymentError):
    pass


class CutoverConflict(DeploymentError):
    pass


def _actor_name(actor: Any, actor_name: str) -> str:
    if actor_name:
        return actor_name
    if actor is not None and getattr(actor, "pk", None):
        return actor.get_username()
    return "system"


def _user_or_none(actor: Any) -> Any:
    return actor if actor is not None and getattr(actor, "pk", None) else None


def audit_record(
    *,
    action: str,
    obj: models.Model | None = None,
    actor: Any = None,
    actor_name: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=_user_or_none(actor),
        actor_name=_actor_name(actor, actor_name),
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        details=details or {},
    )


# --- Environments -------------------------------------------------------------------------


def environment_configure(
    *,
    name: str,
    blue_port: int,
    green_port: int,
    listen_port: int = 0,
    admin_socket: str = "",
    dns_ttl_seconds: int = 0,
    actor: Any = None,
    actor_name: str = "",
) -> Environment:
    """Creates or reconfigures an environment's ports and proxy; never touches its state."""
    if name not in Environment.Name.values:
        raise DeploymentError(f"environment must be one of {', '.join(Environment.Name.values)}")
    if blue_port == green_port:
        raise DeploymentError("the blue and green slots need different ports")
    config = {
        "blue_port": blue_port,
        "green_port": green_port,
        "listen_port": listen_port,
        "admin_socket": admin_socket,
        "dns_ttl_seconds": dns_ttl_seconds,
    }
    environment, _ = Environment.objects.update_or_create(name=name, defaults=config)
    audit_record(
        action="environment.configure",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details=config,
    )
    return environment


def environment_lock_acquire(
    *, environments: list[Environment], holder: str, run: PipelineRun | None = None
) -> None:
    """Takes every environment's deploy lock or none of them; raises ``LockHeld``.

    ``holder`` is the label operators read; ``run`` the run that holds the lock, if any."""
    taken: list[Environment] = []
    now = timezone.now()
    for environment in environments:
        # Race: two deploys starting at once both see the lock free; only one update matches.
        if Environment.objects.filter(pk=environment.pk, lock_holder="").update(
            lock_holder=holder, lock_run=run, locked_at=now
        ):
            taken.append(environment)
            continue
        environment_lock_release(environments=taken, holder=holder, run=run)
        current = Environment.objects.get(pk=environment.pk)
        raise LockHeld(
            f"{current.name} is locked by {current.lock_holder} since "
            f"{current.locked_at:%Y-%m-%d %H:%M:%S} UTC; wait for it or break a stale lock"
        )


def environment_lock_release(
    *, environments: list[Environment], holder: str, run: PipelineRun | None = None
) -> None:
    for environment in environments:
        # Only the holder releases: a broken-and-retaken lock must not be freed by the old run.
        held = Environment.objects.filter(pk=environment.pk, lock_holder=holder)
        held = held.filter(lock_run=run) if run is not None else held.filter(lock_run=None)
        held.update(lock_holder="", lock_run=None, locked_at=None)


def environment_lock_break(
    *, environment: Environment, reason: str, actor: Any = None, actor_name: str = ""
) -> None:
    """Frees a stale lock (older than ``LOCK_STALE_AFTER``); refuses a fresh one."""
    if not reason.strip():
        raise DeploymentError("breaking a lock needs a reason")
    current = Environment.objects.get(pk=environment.pk)
    if not current.lock_holder:
        raise DeploymentError(f"{current.name} is not locked")
    if current.locked_at and timezone.now() - current.locked_at < LOCK_STALE_AFTER:
        minutes = int(LOCK_STALE_AFTER.total_seconds() // 60)
        raise DeploymentError(
            f"{current.name}'s lock ({current.lock_holder}) is younger than {minutes} minutes; "
            "abort its run instead"
        )
    # Race: the holder may finish while the operator confirms; then there is nothing to break.
    broken = Environment.objects.filter(
        pk=current.pk, lock_holder=current.lock_holder, locked_at=current.locked_at
    ).update(lock_holder="", lock_run=None, locked_at=None)
    if not broken:
        raise DeploymentError(f"{current.name}'s lock changed meanwhile; look again")
    audit_record(
        action="environment.lock_break",
        obj=current,
        actor=actor,
        actor_name=actor_name,
        details={"holder": current.lock_holder, "reason": reason},
    )


# --- Releases -----------------------------------------------------------------------------


def release_create(
    *,
    git_sha: str,
    notes: str = "",
    rollback_safe: bool = True,
    rollback_unsafe_reason: str = "",
    migrations: list[str] | None = None,
    actor: Any = None,
    actor_name: str = "",
) -> Release:
    """Adds the next release; versions only ever increase."""
    git_sha = git_sha.strip().lower()
    if not (7 <= len(git_sha) <= 40) or any(c not in "0123456789abcdef" for c in git_sha):
        raise DeploymentError(f"{git_sha!r} is not a git commit SHA")
    if not rollback_safe and not rollback_unsafe_reason.strip():
        raise DeploymentError("a release that is not rollback-safe needs the reason")
    for _ in range(5):
        latest = Release.objects.aggregate(v=models.Max("version"))["v"] or 0
        try:
            # Race: two creations read the same maximum; the unique version lets one win.
            with transaction.atomic():
                release = Release.objects.create(
                    version=latest + 1,
                    git_sha=git_sha,
                    notes=notes,
                    rollback_safe=rollback_safe,
                    rollback_unsafe_reason=rollback_unsafe_reason,
                    migrations=migrations or [],
                    created_by=_user_or_none(actor),
                    created_by_name=_actor_name(actor, actor_name),
                )
        except IntegrityError:
            continue
        audit_record(action="release.create", obj=release, actor=actor, actor_name=actor_name)
        return release
    raise DeploymentError("could not allocate a release version; try again")


# --- Deployments --------------------------------------------------------------------------

_TERMINAL = {
    Deployment.State.FAILURE,
    Deployment.State.ERROR,
    Deployment.State.INACTIVE,
}


def deployment_create(
    *,
    release: Release,
    environment: Environment,
    slot: str,
    run: Any = None,
    rollback: Rollback | None = None,
    description: str = "",
) -> Deployment:
    deployment = Deployment.objects.create(
        release=release, environment=environment, slot=slot, run=run, rollback=rollback
    )
    DeploymentStatus.objects.create(
        deployment=deployment, state=Deployment.State.QUEUED, description=description
    )
    return deployment


def deployment_set_state(*, deployment: Deployment, state: str, description: str = "") -> bool:
    """Appends a status; a finished deployment only ever becomes ``inactive``."""
    allowed_from = [s for s in Deployment.State.values if s not in _TERMINAL]
    if state == Deployment.State.INACTIVE:
        allowed_from = [Deployment.State.SUCCESS]
    # Race: a cutover and a rollback may both finish the same deployment; the first wins.
    changed = Deployment.objects.filter(pk=deployment.pk, state__in=allowed_from).update(
        state=state
    )
    if changed:
        DeploymentStatus.objects.create(deployment=deployment, state=state, description=description)
        deployment.state = state
    return bool(changed)


# --- Health probes of a slot --------------------------------------------------------------


def health_gate_accepts_degraded() -> bool:
    return bool(settings.SWEDIFY_HEALTH_GATE_ACCEPTS_DEGRADED)


def health_probe_record(
    *,
    environment: Environment,
    url: str,
    source: str,
    slot: str = "",
    run: Any = None,
    expected_version: str = "",
    infrastructure: Infrastructure | None = None,
) -> HealthCheck:
    """Probes ``url`` once and records it; ``ok`` means serving, not down, right version."""
    infrastructure = infrastructure or get_infrastructure()
    result = infrastructure.probe(url)
    body = result.body
    status = str(body.get("status", ""))[:16]
    version = str(body.get("version", ""))[:64]
    accepted = {"ok", "degraded"} if health_gate_accepts_degraded() else {"ok"}
    error = result.error
    ok = result.http_status == 200 and status in accepted
    if not error and result.http_status is not None and not ok:
        error = f"HTTP {result.http_status}, status {status or 'missing'}"
    if ok and expected_version and version != expected_version:
        ok = False
        error = f"serves version {version or 'unknown'}, expected {expected_version}"
    components = body.get("components")
    return HealthCheck.objects.create(
        environment=environment,
        slot=slot,
        source=source,
        run=run,
        url=url[:500],
        ok=ok,
        http_status=result.http_status,
        status=status,
        version=version,
        latency_ms=round(result.latency_ms, 1),
        components=components if isinstance(components, dict) else {},
        error=error[:2000],
        at=timezone.now(),
    )


def slot_health_url(*, environment: Environment, slot: str, infrastructure: Infrastructure) -> str:
    base = infrastructure.slot_url(port=environment.port_of(slot))
    return f"{base}/health?detailed=true"


# --- Cutover ------------------------------------------------------------------------------


def environment_cutover(
    *,
    environment: Environment,
    deployment: Deployment,
    reason: str,
    actor: Any = None,
    actor_name: str = "",
    infrastructure: Infrastructure | None = None,
) -> float:
    """Moves traffic to ``deployment``'s slot (proxy first, then the record); returns the
    seconds the proxy took. Raises ``CutoverConflict`` if the live slot changed meanwhile."""
    infrastructure = infrastructure or get_infrastructure()
    current = Environment.objects.get(pk=environment.pk)
    proxy = infrastructure.proxy(current)
    if proxy is not None and current.listen_port and not proxy.is_running():
        # First cutover, or the machine restarted: bring the proxy up where the database says
        # traffic is (nothing live yet: the new slot, already checked healthy).
        proxy = infrastructure.proxy_start(current, live_slot=current.live_slot or deployment.slot)
    seconds = proxy.switch_to(deployment.slot) if proxy is not None else 0.0
    # Race: two cutovers (a deploy and a rollback) from the same state; one update matches.
    # The proxy moved first (the record must never name a slot traffic cannot reach), so the
    # loser puts the proxy back where the winner's record says traffic belongs.
    moved = Environment.objects.filter(
        pk=current.pk, live_slot=current.live_slot, live_release=current.live_release
    ).update(live_slot=deployment.slot, live_release=deployment.release)
    if not moved:
        winner = Environment.objects.get(pk=current.pk)
        if proxy is not None and winner.live_slot and winner.live_slot != deployment.slot:
            proxy.switch_to(winner.live_slot)
        raise CutoverConflict(
            f"{current.name}'s live slot changed during the cutover; traffic stays on "
            f"{winner.live_slot or 'nothing'}"
        )
    for previous in Deployment.objects.filter(
        environment=current, state=Deployment.State.SUCCESS
    ).exclude(pk=deployment.pk):
        deployment_set_state(
            deployment=previous, state=Deployment.State.INACTIVE, description="superseded"
        )
    deployment_set_state(
        deployment=deployment, state=Deployment.State.SUCCESS, description="serving traffic"
    )
    audit_record(
        action="environment.cutover",
        obj=current,
        actor=actor,
        actor_name=actor_name,
        details={
            "from_slot": current.live_slot,
            "to_slot": deployment.slot,
            "from_release": current.live_release.label if current.live_release else None,
            "to_release": deployment.release.label,
            "proxy_seconds": round(seconds, 4),
            "reason": reason,
        },
    )
    environment.live_slot = deployment.slot
    environment.live_release = deployment.release
    return seconds


# --- Rollback -----------------------------------------------------------------------------


def rollback_target(*, environment: Environment) -> Release | None:
    """The release that served ``environment`` before the live one."""
    from deployments.selectors import previous_release

    return previous_release(environment=environment)


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
        # A run waiting out its rollback window holds the lock; that window exists precisely
        # so a rollback can switch back, and cleanup re-checks the live slot before stopping.
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
            actor=_user_or_none(actor),
            actor_name=_actor_name(actor, actor_name),
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
            running = infrastructure.slot_status(environment=environment.name, slot=deployment.slot)
            _start_and_gate(
                environment, deployment.slot, rollback.to_release, infrastructure, running
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
    """True while the lock belongs to a run waiting out its rollback window (its cleanup)."""
    holder, run_id = Environment.objects.values_list("lock_holder", "lock_run_id").get(
        pk=environment.pk
    )
    environment.lock_holder, environment.lock_run_id = holder, run_id
    if run_id is None:
        return False
    return StageRun.objects.filter(
        run_id=run_id, kind="cleanup", outcome=StageRun.Outcome.RUNNING
    ).exists()


def _rollback_prepare(
    rollback: Rollback, environment: Environment, target: Release, infrastructure: Infrastructure
) -> Deployment:
    """Decides switch-back or redeploy and records the rollback's deployment (in progress).

    The warm old slot is health-checked before anything else: a slot that still runs the
    target but no longer answers healthy is redeployed, never switched back to."""
    old_slot = other_slot(environment.live_slot)
    running = infrastructure.slot_status(environment=environment.name, slot=old_slot)
    warm = False
    if running is not None and running.version == target.label:
        check = health_probe_record(
            environment=environment,
            slot=old_slot,
            source=HealthCheck.Source.ROLLBACK,
            url=slot_health_url(
                environment=environment, slot=old_slot, infrastructure=infrastructure
            ),
            expected_version=target.label,
            infrastructure=infrastructure,
        )
        warm = check.ok
    mode = Rollback.Mode.SWITCH_BACK if warm else Rollback.Mode.REDEPLOY
    Rollback.objects.filter(pk=rollback.pk).update(mode=mode)
    rollback.mode = mode
    # Left queued: ``rollback_continue`` claims it (a redelivered task finds it taken).
    return deployment_create(
        release=target, environment=environment, slot=old_slot, rollback=rollback
    )


def _start_and_gate(
    environment: Environment,
    slot: str,
    release: Release,
    infrastructure: Infrastructure,
    occupied: Any,
) -> None:
    if occupied is not None:
        infrastructure.slot_stop(environment=environment.name, slot=slot)
    source_dir = infrastructure.release_source(git_sha=release.git_sha)
    infrastructure.slot_start(
        environment=environment.name,
        slot=slot,
        port=environment.port_of(slot),
        version=release.label,
        source_dir=source_dir,
    )
    attempts = int(settings.SWEDIFY_ROLLBACK_HEALTH_ATTEMPTS)
    delay = float(settings.SWEDIFY_ROLLBACK_HEALTH_DELAY_SECONDS)
    url = slot_health_url(environment=environment, slot=slot, infrastructure=infrastructure)
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
    raise DeploymentError(f"{release.label} did not become healthy in {slot}: {check.error}")


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
