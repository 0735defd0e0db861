"""State changes of the deployments app: environments with their hosts and proxies,
releases, the deploy lock, deployments and their statuses, cutovers across every proxy,
health probe records and the audit trail (rollbacks: ``deployments.rollbacks``).

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

from deployments.adapters import Infrastructure, ProxyLike, get_infrastructure
from deployments.models import (
    AppHost,
    AuditEvent,
    Deployment,
    DeploymentStatus,
    Environment,
    HealthCheck,
    HostRef,
    PipelineRun,
    ProxyInstance,
    ProxyRef,
    Release,
    Rollback,
)
from deployments.proxy import ProxyError, proxy_admin_socket, tcp_admin_address

logger = logging.getLogger(__name__)

# The rollback SLA: a rollback that takes longer is flagged in the admin and the report.
ROLLBACK_BUDGET = timedelta(minutes=1)
# A lock older than this may be broken by an operator (with a reason); a younger one only by
# finishing or aborting its run.
LOCK_STALE_AFTER = timedelta(minutes=30)


class DeploymentError(Exception):
    """A refused or failed operation; the message is shown to the operator as is."""


class LockHeld(DeploymentError):
    pass


class RollbackRefused(DeploymentError):
    pass


class CutoverConflict(DeploymentError):
    pass


class CutoverFailed(DeploymentError):
    """A proxy could not be switched; the others were switched back (all or nothing)."""


def actor_label(actor: Any, actor_name: str) -> str:
    if actor_name:
        return actor_name
    if actor is not None and getattr(actor, "pk", None):
        return actor.get_username()
    return "system"


def user_or_none(actor: Any) -> Any:
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
        actor=user_or_none(actor),
        actor_name=actor_label(actor, actor_name),
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


def _check_address(address: str) -> str:
    address = address.strip()
    if not address or any(c.isspace() or c in "/@" for c in address):
        raise DeploymentError(f"{address!r} is not a host address")
    return address


def environment_host_add(
    *,
    environment: Environment,
    address: str,
    blue_port: int,
    green_port: int,
    actor: Any = None,
    actor_name: str = "",
) -> AppHost:
    """Adds an app host (or re-enables and re-ports one listed before). Once an environment
    lists hosts, deploys reach exactly those: list the first machine too."""
    address = _check_address(address)
    if blue_port == green_port:
        raise DeploymentError("the blue and green slots need different ports")
    host, created = AppHost.objects.update_or_create(
        environment=environment,
        address=address,
        defaults={"blue_port": blue_port, "green_port": green_port, "enabled": True},
    )
    audit_record(
        action="environment.host_add" if created else "environment.host_update",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"address": address, "blue_port": blue_port, "green_port": green_port},
    )
    return host


def environment_host_set_enabled(
    *,
    environment: Environment,
    address: str,
    enabled: bool,
    actor: Any = None,
    actor_name: str = "",
) -> AppHost:
    """Takes a host out of deploys and of the proxies' configuration (a machine down or in
    maintenance), or back in. The last enabled host cannot be disabled."""
    host = AppHost.objects.filter(environment=environment, address=address).first()
    if host is None:
        raise DeploymentError(f"{environment.name} has no host {address}")
    if not enabled and not environment.hosts.filter(enabled=True).exclude(pk=host.pk).exists():
        raise DeploymentError(f"{address} is {environment.name}'s last enabled host")
    AppHost.objects.filter(pk=host.pk).update(enabled=enabled)
    host.enabled = enabled
    audit_record(
        action="environment.host_enable" if enabled else "environment.host_disable",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"address": address},
    )
    return host


def environment_host_remove(
    *, environment: Environment, address: str, actor: Any = None, actor_name: str = ""
) -> None:
    environment_host_set_enabled(
        environment=environment, address=address, enabled=False, actor=actor, actor_name=actor_name
    )
    AppHost.objects.filter(environment=environment, address=address).delete()
    audit_record(
        action="environment.host_remove",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"address": address},
    )


def environment_proxy_add(
    *,
    environment: Environment,
    name: str,
    address: str,
    listen_port: int,
    admin_socket: str = "",
    actor: Any = None,
    actor_name: str = "",
) -> ProxyInstance:
    """Adds an HAProxy in front of the environment (or updates the one of that name). One on
    this machine (a loopback address) gets its admin socket under SWEDIFY_DATA_DIR/proxy/;
    one on another machine needs its runtime API as ``address:port``."""
    address = _check_address(address)
    if not admin_socket:
        if not address.startswith("127."):
            raise DeploymentError(
                f"proxy {name} on {address} needs its admin socket as address:port"
            )
        try:
            admin_socket = str(proxy_admin_socket(environment=name))
        except ProxyError as error:
            raise DeploymentError(str(error)) from None
    proxy, created = ProxyInstance.objects.update_or_create(
        name=name,
        defaults={
            "environment": environment,
            "address": address,
            "listen_port": listen_port,
            "admin_socket": admin_socket,
            "enabled": True,
        },
    )
    audit_record(
        action="environment.proxy_add" if created else "environment.proxy_update",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"name": name, "address": address, "listen_port": listen_port},
    )
    return proxy


def environment_proxy_set_enabled(
    *, environment: Environment, name: str, enabled: bool, actor: Any = None, actor_name: str = ""
) -> ProxyInstance:
    """Leaves a proxy out of cutovers (its machine is down) or takes it back in. A proxy
    taken back in must first be brought to the live slot (``manage.py proxy … start``)."""
    proxy = ProxyInstance.objects.filter(environment=environment, name=name).first()
    if proxy is None:
        raise DeploymentError(f"{environment.name} has no proxy {name}")
    ProxyInstance.objects.filter(pk=proxy.pk).update(enabled=enabled)
    proxy.enabled = enabled
    audit_record(
        action="environment.proxy_enable" if enabled else "environment.proxy_disable",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"name": name},
    )
    return proxy


def environment_proxy_remove(
    *, environment: Environment, name: str, actor: Any = None, actor_name: str = ""
) -> None:
    if not ProxyInstance.objects.filter(environment=environment, name=name).delete()[0]:
        raise DeploymentError(f"{environment.name} has no proxy {name}")
    audit_record(
        action="environment.proxy_remove",
        obj=environment,
        actor=actor,
        actor_name=actor_name,
        details={"name": name},
    )


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
                    created_by=user_or_none(actor),
                    created_by_name=actor_label(actor, actor_name),
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


def deployment_fail_after_cutover(*, deployment: Deployment, description: str) -> bool:
    """Appends ``failure`` to a deployment that was serving (``success``) when the analysis
    after its cutover found the release bad; False when it had already moved on."""
    # Race: a manual rollback marks it inactive meanwhile; whichever comes first stays.
    changed = Deployment.objects.filter(pk=deployment.pk, state=Deployment.State.SUCCESS).update(
        state=Deployment.State.FAILURE
    )
    if changed:
        DeploymentStatus.objects.create(
            deployment=deployment, state=Deployment.State.FAILURE, description=description
        )
        deployment.state = Deployment.State.FAILURE
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


def slot_health_url(
    *,
    environment: Environment,
    slot: str,
    infrastructure: Infrastructure,
    host: HostRef | None = None,
) -> str:
    """The detailed-health URL of ``slot`` on ``host`` (the environment's first host)."""
    host = host or environment.app_hosts()[0]
    base = infrastructure.slot_url(port=host.port_of(slot), host=host)
    return f"{base}/health?detailed=true"


# --- Cutover ------------------------------------------------------------------------------


def _proxies_switch(
    environment: Environment, slot: str, infrastructure: Infrastructure
) -> tuple[float, list[tuple[ProxyRef, ProxyLike, str | None]]]:
    """Switches every proxy of ``environment`` to ``slot``, all or nothing: when one cannot
    be switched, those already switched go back to the slot they routed and
    ``CutoverFailed`` names the proxy. Returns the seconds taken and what each routed."""
    started = time.monotonic()
    switched: list[tuple[ProxyRef, ProxyLike, str | None]] = []
    for ref, proxy in infrastructure.environment_proxies(environment):
        try:
            if (
                ref.listen_port
                and not proxy.is_running()
                and not tcp_admin_address(ref.admin_socket)
            ):
                # First cutover, or its machine restarted: bring the proxy up where the
                # database says traffic is (nothing live yet: the new slot, checked healthy).
                proxy = infrastructure.proxy_start(
                    environment, live_slot=environment.live_slot or slot, ref=ref
                )
            previous = proxy.routed_slot()
            proxy.switch_to(slot)
        except Exception as error:  # noqa: BLE001 - any failure of one proxy undoes them all
            logger.warning("proxy %s could not be switched to %s: %s", ref, slot, error)
            back = proxies_switch_back(switched)
            raise CutoverFailed(
                f"proxy {ref} could not be switched to {slot} ({_first_line(error)}); "
                f"{back}; traffic stays on {environment.live_slot or 'nothing'}"
            ) from None
        switched.append((ref, proxy, previous))
    return time.monotonic() - started, switched


def proxies_switch_back(switched: list[tuple[ProxyRef, ProxyLike, str | None]]) -> str:
    """Puts each switched proxy back on the slot it routed before; says what it did."""
    if not switched:
        return "no other proxy had been switched"
    undone, failed = [], []
    for ref, proxy, previous in reversed(switched):
        if not previous:
            failed.append(f"{ref} (routed nothing before)")
            continue
        try:
            proxy.switch_to(previous)
            undone.append(str(ref))
        except Exception as error:  # noqa: BLE001 - reported to the operator, never hidden
            logger.error("proxy %s could not be switched back to %s: %s", ref, previous, error)
            failed.append(f"{ref} ({_first_line(error)})")
    text = f"switched back: {', '.join(undone) or 'none'}"
    if failed:
        text += f"; NOT switched back: {', '.join(failed)}"
    return text


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def environment_cutover(
    *,
    environment: Environment,
    deployment: Deployment,
    reason: str,
    actor: Any = None,
    actor_name: str = "",
    infrastructure: Infrastructure | None = None,
) -> float:
    """Moves traffic to ``deployment``'s slot on every proxy (proxies first, then the
    record); returns the seconds the proxies took.

    Raises ``CutoverFailed`` when a proxy cannot be switched (the others are switched back)
    and ``CutoverConflict`` when the live slot changed meanwhile (the proxies are switched
    back to the slot the winner recorded)."""
    infrastructure = infrastructure or get_infrastructure()
    current = Environment.objects.get(pk=environment.pk)
    seconds, switched = _proxies_switch(current, deployment.slot, infrastructure)
    # Race: two cutovers (a deploy and a rollback) from the same state; one update matches.
    # The proxies moved first (the record must never name a slot traffic cannot reach), so
    # the loser puts them back where the winner's record says traffic belongs.
    moved = Environment.objects.filter(
        pk=current.pk, live_slot=current.live_slot, live_release=current.live_release
    ).update(live_slot=deployment.slot, live_release=deployment.release)
    if not moved:
        winner = Environment.objects.get(pk=current.pk)
        if winner.live_slot and winner.live_slot != deployment.slot:
            proxies_switch_back([(ref, proxy, winner.live_slot) for ref, proxy, _ in switched])
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


# --- Periodic probes of hosts and proxies -------------------------------------------------


def environment_members_probe(
    *, environment: Environment, infrastructure: Infrastructure | None = None
) -> tuple[int, int]:
    """Records whether each listed host and proxy is up (the admin shows it): a host is up
    when its live slot answers ``/health`` with 200, a proxy when its runtime API answers and
    it routes the live slot. Returns how many hosts and proxies are up."""
    infrastructure = infrastructure or get_infrastructure()
    now = timezone.now()
    slot = environment.live_slot or "blue"
    hosts_up = proxies_up = 0
    for host in environment.hosts.filter(enabled=True):
        ref = HostRef(host.address, host.blue_port, host.green_port, host.pk)
        result = infrastructure.probe(
            f"{infrastructure.slot_url(port=ref.port_of(slot), host=ref)}/health"
        )
        up = result.http_status == 200
        error = result.error or ("" if up else f"HTTP {result.http_status}")
        AppHost.objects.filter(pk=host.pk).update(
            probe_ok=up, probed_at=now, probe_error=f"{slot}: {error}" if error else ""
        )
        hosts_up += up
    for ref, proxy in infrastructure.environment_proxies(environment):
        if ref.pk is None:
            continue
        try:
            routed = proxy.routed_slot() if proxy.is_running() else None
            error = "" if proxy.is_running() else "its runtime API does not answer"
        except Exception as failure:  # noqa: BLE001 - a failing proxy is recorded as down
            routed, error = None, _first_line(failure)
        if not error and environment.live_slot and routed != environment.live_slot:
            error = (
                f"routes {routed or 'no single slot'}, the database says {environment.live_slot}"
            )
        ProxyInstance.objects.filter(pk=ref.pk).update(
            probe_ok=not error, probed_at=now, probe_error=error
        )
        proxies_up += not error
    return hosts_up, proxies_up
