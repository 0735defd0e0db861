"""Reads for the operator's console: previous releases, uptime, latest failures and what the
proxy really routes next to what the database believes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from deployments.adapters import Infrastructure, get_infrastructure
from deployments.models import (
    Deployment,
    Environment,
    HealthCheck,
    ProxyRef,
    Release,
    other_slot,
)

UPTIME_TARGET_PERCENT = 99.9
UPTIME_WINDOWS = (
    ("24 h", timedelta(hours=24)),
    ("7 d", timedelta(days=7)),
    ("30 d", timedelta(days=30)),
)


def previous_release(*, environment: Environment) -> Release | None:
    """The newest release other than the live one that once served traffic here."""
    if environment.live_release_id is None:
        return None
    deployment = (
        Deployment.objects.filter(
            environment=environment,
            state__in=[Deployment.State.SUCCESS, Deployment.State.INACTIVE],
        )
        .exclude(release_id=environment.live_release_id)
        .select_related("release")
        .order_by("-created_at", "-id")
        .first()
    )
    return deployment.release if deployment else None


@dataclass
class Uptime:
    label: str
    total: int
    ok: int

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.ok / self.total, 3) if self.total else None

    @property
    def meets_target(self) -> bool | None:
        percent = self.percent
        return None if percent is None else percent >= UPTIME_TARGET_PERCENT


def environment_uptime(*, environment: Environment, now: Any = None) -> list[Uptime]:
    """Share of periodic probes that passed per window: one aggregate query per window,
    served by the (environment, -at) index."""
    now = now or timezone.now()
    result = []
    for label, window in UPTIME_WINDOWS:
        counts = HealthCheck.objects.filter(
            environment=environment, source=HealthCheck.Source.PERIODIC, at__gte=now - window
        ).aggregate(total=Count("id"), ok=Count("id", filter=Q(ok=True)))
        result.append(Uptime(label=label, total=counts["total"], ok=counts["ok"]))
    return result


def latest_failures(*, environment: Environment, limit: int = 10) -> QuerySet[HealthCheck]:
    return HealthCheck.objects.filter(environment=environment, ok=False).order_by("-at")[:limit]


def last_health(*, environment: Environment) -> HealthCheck | None:
    return HealthCheck.objects.filter(environment=environment).order_by("-at").first()


@dataclass
class ProxyView:
    """What HAProxy says, or why it could not be asked."""

    configured: bool
    reachable: bool = False
    routed_slot: str | None = None
    server_states: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def disagrees_with(self, live_slot: str) -> bool:
        return self.reachable and (self.routed_slot or "") != (live_slot or "")


def proxy_view(
    *, environment: Environment, infrastructure: Infrastructure | None = None
) -> ProxyView:
    """Never raises: an unreachable proxy is an answer the console shows, not a 500."""
    infrastructure = infrastructure or get_infrastructure()
    try:
        proxy = infrastructure.proxy(environment)
    except Exception as error:  # noqa: BLE001 - the console shows any adapter failure as text
        return ProxyView(configured=True, error=str(error) or type(error).__name__)
    if proxy is None:
        return ProxyView(configured=False)
    try:
        if not proxy.is_running():
            return ProxyView(configured=True, error="the proxy is not running")
        return ProxyView(
            configured=True,
            reachable=True,
            routed_slot=proxy.routed_slot(),
            server_states=proxy.server_states(),
        )
    except Exception as error:  # noqa: BLE001 - same: unreachable is shown, never raised
        return ProxyView(configured=True, error=str(error) or type(error).__name__)


def environment_overview(
    *, environment: Environment, infrastructure: Infrastructure | None = None
) -> dict[str, Any]:
    proxy = proxy_view(environment=environment, infrastructure=infrastructure)
    return {
        "environment": environment,
        "live_slot": environment.live_slot,
        "live_release": environment.live_release,
        "idle_slot": other_slot(environment.live_slot) if environment.live_slot else "blue",
        "previous_release": previous_release(environment=environment),
        "proxy": proxy,
        "disagreement": proxy.disagrees_with(environment.live_slot),
        "last_health": last_health(environment=environment),
        "uptime": environment_uptime(environment=environment),
        "failures": latest_failures(environment=environment),
        "uptime_target": UPTIME_TARGET_PERCENT,
    }


def proxy_differences(*, environment: Environment, ref: ProxyRef, proxy: Any) -> list[str]:
    """Each way a listed proxy's backend differs from the environment's enabled hosts: a
    host's server it lacks, a server no enabled host lists, a live server that is not ready,
    an idle one that still is. Empty for the single-host proxy (its two servers are fixed)."""
    if ref.pk is None:
        return []
    servers = proxy.servers()
    by_address = {(s.address, s.port): (name, s) for name, s in servers.items()}
    expected: set[tuple[str, int]] = set()
    differences = []
    live = environment.live_slot
    for host in environment.app_hosts():
        for slot in ("blue", "green"):
            key = (host.address, host.port_of(slot))
            expected.add(key)
            if key not in by_address:
                differences.append(
                    f"host {host.address} {slot} ({key[0]}:{key[1]}) is not in its backend "
                    "(manage.py proxy … reload)"
                )
                continue
            name, server = by_address[key]
            if live and slot == live and server.admin != "ready":
                differences.append(f"{name} serves the live slot {live} but is {server.admin}")
            if live and slot != live and server.admin == "ready":
                differences.append(f"{name} is the idle slot {slot} but ready (gets traffic)")
    for key, (name, _) in sorted(by_address.items()):
        if key not in expected:
            differences.append(
                f"server {name} ({key[0]}:{key[1]}) belongs to no enabled host "
                "(manage.py proxy … reload)"
            )
    return differences
