"""The pipeline's stage handlers, one per kind: commands, deploy, health, cutover, cleanup.

Each takes the run, its stage row and the infrastructure and answers a ``StageResult``; the
runner (``deployments.pipeline``) applies attempts, delays and the failure action. Deploy,
health and cleanup reach every enabled host of an environment; the cutover switches every
proxy, all or nothing. No traffic moves before every host's new slot has passed its gate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

from deployments.adapters import Infrastructure
from deployments.models import (
    Deployment,
    Environment,
    HealthCheck,
    HostRef,
    PipelineRun,
    StageRun,
)
from deployments.services import (
    DeploymentError,
    deployment_create,
    deployment_set_state,
    environment_cutover,
    health_probe_record,
    slot_health_url,
)

# Captured command output kept per stage (the tail, where the failure usually is).
LOG_LIMIT = 20_000

T = TypeVar("T")


@dataclass
class StageResult:
    ok: bool
    summary: str
    log: str = ""
    tooling_error: bool = False


def run_context_update(run: PipelineRun, **values: Any) -> None:
    run.refresh_from_db(fields=["context"])
    run.context = {**run.context, **values}
    PipelineRun.objects.filter(pk=run.pk).update(context=run.context)


def on_every_host(hosts: list[HostRef], work: Callable[[HostRef], T]) -> dict[str, T | Exception]:
    """Runs ``work`` for every host at once (a slot start takes seconds per host) and
    answers each host's result or the exception it raised, by address."""
    if len(hosts) == 1:
        try:
            return {hosts[0].address: work(hosts[0])}
        except Exception as error:  # noqa: BLE001 - the caller names the failing host
            return {hosts[0].address: error}

    def guarded(host: HostRef) -> T | Exception:
        try:
            return work(host)
        except Exception as error:  # noqa: BLE001 - same
            return error

    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="deploy-host") as pool:
        return dict(zip([h.address for h in hosts], pool.map(guarded, hosts), strict=True))


def _failures(results: dict[str, Any]) -> list[str]:
    return [
        f"{address}: {type(error).__name__}: {error}"
        for address, error in results.items()
        if isinstance(error, Exception)
    ]


def _routing_proxies(
    environment: Environment, slot: str, infrastructure: Infrastructure
) -> list[str]:
    """The proxies that really send traffic to ``slot`` (unreachable ones are skipped: a
    proxy that cannot be asked routes nothing it could be switched away from)."""
    routing = []
    for ref, proxy in infrastructure.environment_proxies(environment):
        try:
            if proxy.is_running() and proxy.routed_slot() == slot:
                routing.append(str(ref))
        except Exception:  # noqa: BLE001, S112 - unreachable: see above
            continue
    return routing


def _commands(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    params = stage.params
    commands = [c.replace("{python}", sys.executable) for c in params.get("commands", [])]
    if not commands:
        return StageResult(True, "no commands configured")
    if params.get("cwd", "release") == "project":
        cwd = Path(settings.BASE_DIR)
    else:
        cwd = infrastructure.release_source(git_sha=run.release.git_sha)
    logs = []
    for command in commands:
        result = infrastructure.run_command(command, cwd=cwd, timeout=stage.timeout_seconds)
        logs.append(f"$ {command}\n{result.output[-LOG_LIMIT:]}".rstrip())
        if result.returncode != 0:
            return StageResult(
                False, f"`{command}` exited with {result.returncode}", "\n".join(logs)
            )
    return StageResult(True, f"{len(commands)} command(s) passed", "\n".join(logs))


def _deploy(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    environment = Environment.objects.get(name=stage.params["environment"])
    release = run.release
    slot = environment.idle_slot
    hosts = environment.app_hosts()
    routing = _routing_proxies(environment, slot, infrastructure)
    if routing:
        # The database and a proxy disagree: never start over the slot that serves.
        return StageResult(
            False,
            f"HAProxy routes {slot}, which the database believes idle ({', '.join(routing)}); "
            "not touching it",
        )
    for earlier in Deployment.objects.filter(
        run=run, environment=environment, state=Deployment.State.IN_PROGRESS
    ):
        deployment_set_state(
            deployment=earlier, state=Deployment.State.ERROR, description="replaced by a retry"
        )
    deployment = deployment_create(
        release=release,
        environment=environment,
        slot=slot,
        run=run,
        description=f"run #{run.pk}",
    )
    deployment_set_state(deployment=deployment, state=Deployment.State.IN_PROGRESS)
    run_context_update(
        run,
        **{
            environment.name: {
                "slot": slot,
                "deployment": deployment.pk,
                "previous_slot": environment.live_slot,
                "previous_release": environment.live_release_id,
                "hosts": [h.address for h in hosts],
            }
        },
    )
    # Only a slot on this machine runs from a local export; an agent fetches its own.
    local = any(h.local for h in hosts)
    source_dir = infrastructure.release_source(git_sha=release.git_sha) if local else None

    def start(host: HostRef) -> str:
        if infrastructure.slot_status(environment=environment.name, slot=slot, host=host):
            infrastructure.slot_stop(environment=environment.name, slot=slot, host=host)
        started = infrastructure.slot_start(
            environment=environment.name,
            slot=slot,
            port=host.port_of(slot),
            version=release.label,
            source_dir=source_dir,
            git_sha=release.git_sha,
            host=host,
        )
        return f"{host.address}:{started.port}"

    results = on_every_host(hosts, start)
    failed = _failures(results)
    if failed:
        # Nothing moved: the old release serves everywhere; the started slots stay idle.
        return StageResult(
            False,
            f"{release.label} did not start on every host: {'; '.join(failed)}",
            tooling_error=True,
        )
    return StageResult(
        True,
        f"{release.label} started in {environment.name}/{slot} on {', '.join(results.values())}",
    )


def _health(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    """Passes only when the new slot on every host passes (each attempt probes them all; the
    stage's attempts are each host's retries). A failing host stops the run before any
    traffic moves."""
    environment = Environment.objects.get(name=stage.params["environment"])
    run.refresh_from_db(fields=["context"])
    placed = run.context.get(environment.name)
    if not placed:
        return StageResult(False, f"nothing was deployed to {environment.name} in this run")
    hosts = [h for h in environment.app_hosts() if h.address in placed.get("hosts", [h.address])]
    checks = []
    for host in hosts:
        checks.append(
            health_probe_record(
                environment=environment,
                slot=placed["slot"],
                source=HealthCheck.Source.PIPELINE,
                run=run,
                url=slot_health_url(
                    environment=environment,
                    slot=placed["slot"],
                    infrastructure=infrastructure,
                    host=host,
                ),
                expected_version=run.release.label,
                infrastructure=infrastructure,
            )
        )
    failing = [(h, c) for h, c in zip(hosts, checks, strict=True) if not c.ok]
    if failing:
        # The deployment stays in progress: an operator may still retry this gate; an abort
        # marks it failed.
        where = "; ".join(f"{h.address}: {c.error}" for h, c in failing)
        return StageResult(False, f"unhealthy on {len(failing)} of {len(hosts)} hosts: {where}")
    slowest = max(c.latency_ms for c in checks)
    summary = f"{checks[0].status} on {len(hosts)} host(s), slowest {slowest:.0f} ms"
    if stage.params.get("promote"):
        seconds = environment_cutover(
            environment=environment,
            deployment=Deployment.objects.get(pk=placed["deployment"]),
            reason=f"run #{run.pk} staging promotion",
            actor_name="pipeline",
            infrastructure=infrastructure,
        )
        summary += f"; now serving {environment.name} (switch {seconds:.3f} s)"
    return StageResult(True, summary)


def _cutover(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    environment = Environment.objects.get(name=stage.params["environment"])
    run.refresh_from_db(fields=["context"])
    placed = run.context.get(environment.name)
    if not placed:
        return StageResult(False, f"nothing was deployed to {environment.name} in this run")
    deployment = Deployment.objects.get(pk=placed["deployment"])
    if deployment.state != Deployment.State.IN_PROGRESS:
        return StageResult(False, f"the {environment.name} deployment is {deployment.state}")
    try:
        seconds = environment_cutover(
            environment=environment,
            deployment=deployment,
            reason=f"run #{run.pk} cutover",
            actor_name="pipeline",
            infrastructure=infrastructure,
        )
    except DeploymentError as error:
        # All or nothing: every proxy that had moved was switched back.
        return StageResult(False, str(error))
    run_context_update(
        run,
        cutover={
            "environment": environment.name,
            "at": timezone.now().isoformat(),
            "seconds": seconds,
            "slot": deployment.slot,
            "previous_slot": placed.get("previous_slot") or "",
            "previous_release": placed.get("previous_release"),
        },
    )
    return StageResult(True, f"traffic on {deployment.slot} ({seconds:.3f} s)")


def _cleanup(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    """Stops each environment's previous slot on every host once it has drained and the
    rollback window (and, for a remote cutover, the DNS TTL) has passed; never a slot that a
    proxy still routes."""
    run.refresh_from_db(fields=["context"])
    params = stage.params
    drain = float(params.get("drain_seconds", 0))
    window = float(params.get("rollback_window_seconds", 0))
    notes = []
    cutover = run.context.get("cutover") or {}
    for name in params.get("environments", []):
        placed = run.context.get(name)
        environment = Environment.objects.filter(name=name).first()
        if not placed or environment is None:
            continue
        old_slot = placed.get("previous_slot")
        if not old_slot:
            notes.append(f"{name}: no previous slot")
            continue
        if environment.live_slot == old_slot or environment.live_release_id != run.release_id:
            notes.append(f"{name}: {old_slot} serves again (rolled back?); left running")
            continue
        ttl = float(environment.dns_ttl_seconds)
        if cutover.get("environment") == name:
            # The rollback window applies where traffic was cut over, counted from then.
            elapsed = (timezone.now() - datetime.fromisoformat(cutover["at"])).total_seconds()
            wait = max(0.0, max(drain, window, ttl) - elapsed)
        else:
            wait = max(drain, ttl)
        infrastructure.sleep(wait)
        environment.refresh_from_db()
        if environment.live_slot == old_slot:
            notes.append(f"{name}: {old_slot} serves again (rolled back); left running")
            continue
        routing = _routing_proxies(environment, old_slot, infrastructure)
        if routing:
            return StageResult(
                False, f"HAProxy still routes {name}/{old_slot} ({', '.join(routing)}); not stopped"
            )

        def stop(
            host: HostRef, environment: Environment = environment, slot: str = old_slot
        ) -> None:
            infrastructure.slot_stop(environment=environment.name, slot=slot, host=host)

        failed = _failures(on_every_host(environment.app_hosts(), stop))
        if failed:
            return StageResult(False, f"{name}: {old_slot} not stopped on {'; '.join(failed)}")
        notes.append(f"{name}: stopped {old_slot} after {wait:.1f} s")
    return StageResult(True, "; ".join(notes) or "nothing to stop")


HANDLERS: dict[str, Callable[[PipelineRun, StageRun, Infrastructure], StageResult]] = {
    "commands": _commands,
    "deploy": _deploy,
    "health": _health,
    "cutover": _cutover,
    "cleanup": _cleanup,
}
