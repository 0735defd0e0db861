"""The pipeline's stage handlers, one per kind: commands, deploy, health, cutover, analysis,
cleanup.

Each takes the run, its stage row and the infrastructure and answers a ``StageResult``; the
runner (``deployments.pipeline``) applies attempts, delays and the failure action. Deploy,
health and cleanup reach every enabled host of an environment; the cutover switches every
proxy, all or nothing. No traffic moves before every host's new slot has passed its gate.
After the cutover, the analysis watches the new release for a window and switches every proxy
back to the still-warm old slots when it crosses a threshold (an automatic rollback).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

from deployments.adapters import Infrastructure
from deployments.analysis import Thresholds, analysis_watch
from deployments.gate import gate_key, gate_passed_before
from deployments.models import (
    Deployment,
    Environment,
    HealthCheck,
    HostRef,
    PipelineRun,
    Release,
    Rollback,
    StageRun,
)
from deployments.rollbacks import rollback_start
from deployments.services import (
    DeploymentError,
    audit_record,
    deployment_create,
    deployment_fail_after_cutover,
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
    if not params.get("commands"):
        return StageResult(True, "no commands configured")
    in_release = params.get("cwd", "release") != "project"
    if in_release:
        cwd = infrastructure.release_source(git_sha=run.release.git_sha)
        python = infrastructure.gate_python(source_dir=cwd)
    else:
        cwd, python = Path(settings.BASE_DIR), sys.executable
    commands = [c.replace("{python}", python) for c in params["commands"]]
    key = None
    run.refresh_from_db(fields=["context"])
    if params.get("reuse_passed") and in_release:
        key = gate_key(git_sha=run.release.git_sha, commands=commands, python=python)
    if key is not None:
        earlier = gate_passed_before(stage_key=stage.key, key=key, run=run)
        if earlier is not None:
            run_context_update(run, gates={**run.context.get("gates", {}), stage.key: key})
            return StageResult(
                True,
                f"{len(commands)} command(s) passed in run #{earlier.pk} for the same files, "
                "commands and packages; not run again",
                f"reused the verdict of run #{earlier.pk} (gate key {key[:16]})",
            )
    logs = []
    for command in commands:
        result = infrastructure.run_command(command, cwd=cwd, timeout=stage.timeout_seconds)
        logs.append(f"$ {command}\n{result.output[-LOG_LIMIT:]}".rstrip())
        if result.returncode != 0:
            return StageResult(
                False, f"`{command}` exited with {result.returncode}", "\n".join(logs)
            )
    if key is not None:
        run_context_update(run, gates={**run.context.get("gates", {}), stage.key: key})
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


def analysis_thresholds(params: dict[str, Any]) -> Thresholds:
    """The analysis stage's params (window, interval, thresholds) over the defaults."""
    defaults = Thresholds()
    return Thresholds(
        window_seconds=float(params.get("window_seconds", defaults.window_seconds)),
        interval_seconds=float(params.get("interval_seconds", defaults.interval_seconds)),
        max_5xx_share=float(params.get("max_5xx_share", defaults.max_5xx_share)),
        max_response_ms=float(params.get("max_response_ms", defaults.max_response_ms)),
        min_responses=int(params.get("min_responses", defaults.min_responses)),
    )


def analysis_promoted(run: PipelineRun) -> bool:
    """An operator ended this run's analysis window early (``pipeline_run_promote``)."""
    context = PipelineRun.objects.values_list("context", flat=True).get(pk=run.pk)
    return bool(context.get("promoted"))


def _slots_health_problem(
    run: PipelineRun, environment: Environment, slot: str, infrastructure: Infrastructure
) -> Callable[[], str | None]:
    """Probes the new slot on every host; names the first one failing twice in a row (one
    lost probe on a loaded machine is not a bad release). Only failures are recorded."""
    urls = [
        (
            host,
            slot_health_url(
                environment=environment, slot=slot, infrastructure=infrastructure, host=host
            ),
        )
        for host in environment.app_hosts()
    ]

    def problem() -> str | None:
        for host, url in urls:
            result = infrastructure.probe(url)
            if result.http_status == 200 and result.body.get("status") in {"ok", "degraded"}:
                continue
            check = health_probe_record(
                environment=environment,
                slot=slot,
                source=HealthCheck.Source.PIPELINE,
                run=run,
                url=url,
                expected_version=run.release.label,
                infrastructure=infrastructure,
            )
            if not check.ok:
                return f"health probe of {slot} on {host.address} failing ({check.error})"
        return None

    return problem


def _analysis(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    """Watches the release this run cut over to, through every proxy's counters and the new
    slots' health probes, for the window; a bad verdict switches every proxy back to the
    still-warm old slots (an automatic rollback with the verdict as its reason) and fails the
    deployment. An operator ends the window early by promoting, or by rolling back."""
    run.refresh_from_db(fields=["context"])
    cutover = run.context.get("cutover")
    if not cutover:
        return StageResult(True, "nothing to analyse: this run moved no traffic")
    if not cutover.get("previous_release"):
        # A first release has nothing to go back to: no window to wait out.
        return StageResult(True, "nothing to analyse against: no earlier release served")
    environment = Environment.objects.get(name=cutover["environment"])
    thresholds = analysis_thresholds(stage.params)
    proxies = [proxy for _, proxy in infrastructure.environment_proxies(environment)]

    def operator_ended() -> bool:
        live = Environment.objects.values_list("live_release_id", flat=True).get(pk=environment.pk)
        return live != run.release_id or analysis_promoted(run)

    # Time passes at least as fast as the sleeps asked for (the fakes' sleeps return at
    # once): what a sleep fell short of is added to the clock.
    skipped = [0.0]

    def sleep(seconds: float) -> None:
        before = time.monotonic()
        infrastructure.sleep(seconds)
        skipped[0] += max(0.0, seconds - (time.monotonic() - before))

    verdict = analysis_watch(
        proxies=proxies,  # type: ignore[arg-type] - the runtime-API handles answer ``show stat``
        thresholds=thresholds,
        health_problem=_slots_health_problem(run, environment, cutover["slot"], infrastructure),
        should_stop=operator_ended,
        sleep=sleep,
        clock=lambda: time.monotonic() + skipped[0],
    )
    environment.refresh_from_db()
    if environment.live_release_id != run.release_id:
        return StageResult(
            False,
            f"rolled back by an operator during the analysis ({verdict.reason})",
        )
    if verdict.healthy:
        how = "promoted by an operator" if analysis_promoted(run) else "window ended"
        return StageResult(True, f"{verdict.reason}; {how}")
    return _rollback_automatically(run, environment, cutover, verdict.reason, infrastructure)


def _rollback_automatically(
    run: PipelineRun,
    environment: Environment,
    cutover: dict[str, Any],
    reason: str,
    infrastructure: Infrastructure,
) -> StageResult:
    placed = run.context.get(environment.name) or {}
    deployment = Deployment.objects.filter(pk=placed.get("deployment")).first()
    # Failed first: the switch back would otherwise only mark it superseded.
    if deployment is not None:
        deployment_fail_after_cutover(deployment=deployment, description=reason[:500])
    audit_record(
        action="run.analysis_failed",
        obj=run,
        actor_name="pipeline",
        details={"environment": environment.name, "reason": reason},
    )
    previous = Release.objects.get(pk=cutover["previous_release"])
    try:
        rollback = rollback_start(
            environment=environment,
            reason=reason,
            actor_name="pipeline",
            to_release=previous,
            # The failing release is live; going back is the lesser risk.
            confirm_unsafe=True,
            trigger=Rollback.Trigger.AUTOMATIC,
            run=run,
            lock_holder=run.lock_name,
            infrastructure=infrastructure,
        )
    except DeploymentError as error:
        return StageResult(False, f"{reason}; automatic switch-back refused: {error}")
    return StageResult(
        False,
        f"{reason}; rollback #{rollback.pk} to {previous.label} {rollback.status} "
        f"({rollback.mode}, {rollback.duration_seconds or 0:.3f} s)",
    )


def _cleanup(run: PipelineRun, stage: StageRun, infrastructure: Infrastructure) -> StageResult:
    """Stops each environment's previous slot on every host once it has drained and the
    rollback window (and, for a remote cutover, the DNS TTL) has passed; never a slot that a
    proxy still routes."""
    run.refresh_from_db(fields=["context"])
    if run.stages.filter(
        kind="analysis", outcome__in=[StageRun.Outcome.PENDING, StageRun.Outcome.RUNNING]
    ).exists():
        # The old slots are what makes an automatic rollback a switch: they stay warm until
        # the analysis window has ended.
        return StageResult(False, "the analysis window is still open; nothing stopped")
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
            # The rollback window applies where traffic was cut over, counted from then: the
            # old slot is stopped only after it has ended, however long the stages took.
            cut_at = datetime.fromisoformat(cutover["at"])
            warm_until = cut_at + timedelta(seconds=max(drain, window, ttl))
            wait = max(0.0, (warm_until - timezone.now()).total_seconds())
            when = f"{(warm_until - cut_at).total_seconds():.0f} s after the cutover"
        else:
            wait = max(drain, ttl)
            when = f"after {wait:.1f} s"
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
        notes.append(f"{name}: stopped {old_slot} {when}")
    return StageResult(True, "; ".join(notes) or "nothing to stop")


HANDLERS: dict[str, Callable[[PipelineRun, StageRun, Infrastructure], StageResult]] = {
    "commands": _commands,
    "deploy": _deploy,
    "health": _health,
    "cutover": _cutover,
    "analysis": _analysis,
    "cleanup": _cleanup,
}
