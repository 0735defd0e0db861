"""Background work of the deployments app: pipeline runs, rollback redeploys and the periodic
health probe. Services queue these by name, so nothing below imports this module."""

from __future__ import annotations

import logging

from celery import shared_task

from deployments.adapters import get_infrastructure
from deployments.models import Environment, HealthCheck, Rollback
from deployments.pipeline import pipeline_run_execute
from deployments.rollbacks import rollback_continue
from deployments.services import environment_members_probe, health_probe_record

logger = logging.getLogger(__name__)


@shared_task(name="deployments.tasks.pipeline_run_task", acks_late=True)
def pipeline_run_task(run_id: int) -> str:
    """Runs a queued pipeline run; a redelivery finds it claimed and does nothing."""
    run = pipeline_run_execute(run_id=run_id)
    return run.status if run is not None else "missing"


@shared_task(name="deployments.tasks.rollback_continue_task", acks_late=True)
def rollback_continue_task(rollback_id: int, holder: str, release_lock: bool) -> str:
    """Finishes a rollback whose redeploy the admin queued; a redelivery after it finished
    (or of a rollback that no longer runs) does nothing."""
    rollback = Rollback.objects.filter(pk=rollback_id, status=Rollback.Status.RUNNING).first()
    if rollback is None:
        return "not running"
    rollback = rollback_continue(rollback=rollback, holder=holder, release_lock=release_lock)
    return rollback.status


@shared_task(name="deployments.tasks.environments_probe", acks_late=True)
def environments_probe() -> int:
    """Records one detailed-health probe per environment that serves something, through its
    proxy when it has one (what users reach), else its live slot; and whether each listed
    host and proxy is up. Returns the health rows written."""
    infrastructure = get_infrastructure()
    written = 0
    for environment in Environment.objects.exclude(live_slot=""):
        environment_members_probe(environment=environment, infrastructure=infrastructure)
        proxies = environment.proxy_refs()
        if proxies and proxies[0].pk is not None:
            # Several proxies (DNS or a virtual IP in front): users are served while any one
            # serves, so the first that answers is the one recorded.
            bases = [f"http://{p.address}:{p.listen_port}" for p in proxies]
            serving = [b for b in bases if infrastructure.probe(f"{b}/health").http_status == 200]
            base, slot = (serving or bases)[0], ""
        elif environment.listen_port:
            base = infrastructure.slot_url(port=environment.listen_port)
            slot = ""
        else:
            base = infrastructure.slot_url(port=environment.port_of(environment.live_slot))
            slot = environment.live_slot
        health_probe_record(
            environment=environment,
            slot=slot,
            source=HealthCheck.Source.PERIODIC,
            url=f"{base}/health?detailed=true",
            infrastructure=infrastructure,
        )
        written += 1
    return written
