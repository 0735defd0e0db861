"""Stopping an environment's processes on purpose: its HAProxies on this machine and both
slots on every host.

The slots and proxies a deploy starts are detached from whatever started them (a worker, a
foreground ``manage.py deploy``), so that traffic survives a worker restart; stopping
``make run`` therefore leaves them running and holding their ports until this stops them.
"""

from __future__ import annotations

from typing import Any

from deployments.adapters import Infrastructure, get_infrastructure
from deployments.models import Environment, Slot
from deployments.proxy import tcp_admin_address
from deployments.services import audit_record, environment_lock_acquire, environment_lock_release
from deployments.stages import on_every_host


def environment_stop(
    *,
    environment: Environment,
    actor: Any = None,
    actor_name: str = "",
    infrastructure: Infrastructure | None = None,
) -> list[str]:
    """Stops ``environment``'s HAProxies on this machine, then its blue and green slot on
    every enabled host, and answers one line per thing done or left.

    Holds the environment's deploy lock meanwhile, so it raises ``LockHeld`` (and stops
    nothing) while a run or rollback holds it. The database keeps its live release: the next
    deploy starts from it, and a rollback to it starts it again."""
    infrastructure = infrastructure or get_infrastructure()
    holder = "stop"
    environment_lock_acquire(environments=[environment], holder=holder)
    notes: list[str] = []
    try:
        for ref, proxy in infrastructure.environment_proxies(environment):
            if tcp_admin_address(ref.admin_socket):
                notes.append(f"{ref}: on another machine; stop it there (systemctl stop haproxy)")
                continue
            was_running = proxy.is_running()
            infrastructure.proxy_stop(environment, ref=ref)
            notes.append(f"{ref}: HAProxy {'stopped' if was_running else 'was not running'}")
        for slot in Slot.values:

            def stop(host: Any, slot: str = slot) -> bool:
                running = infrastructure.slot_status(
                    environment=environment.name, slot=slot, host=host
                )
                infrastructure.slot_stop(environment=environment.name, slot=slot, host=host)
                return running is not None

            for address, result in on_every_host(environment.app_hosts(), stop).items():
                if isinstance(result, Exception):
                    notes.append(
                        f"{address} {slot}: NOT stopped: {type(result).__name__}: {result}"
                    )
                else:
                    notes.append(f"{address} {slot}: {'stopped' if result else 'was not running'}")
        audit_record(
            action="environment.stop",
            obj=environment,
            actor=actor,
            actor_name=actor_name,
            details={"notes": notes},
        )
    finally:
        environment_lock_release(environments=[environment], holder=holder)
    return notes
