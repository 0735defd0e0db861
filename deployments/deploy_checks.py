"""What a deploy from this machine needs before its first stage, checked in its first second.

A foreground ``manage.py deploy`` starts the release's slots on this machine with this
process's environment (``deployments.slots.slot_start``): a setting the slots would refuse
(the development secret with DEBUG off, no Spotify credentials and no sandbox opt-in) used to
surface as a paused run after the quality gate, with the slot's traceback in the stage log.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from deployments.adapters import Infrastructure
from deployments.models import Environment
from deployments.proxy import tcp_admin_address
from swedify.preflight import ConfigurationError, check_configuration


def deploy_refusal(
    *, environments: list[Environment], infrastructure: Infrastructure
) -> str | None:
    """One line naming what to set or install before deploying to ``environments`` from
    here, or None when nothing is missing."""
    try:
        check_configuration()
    except (ConfigurationError, ImproperlyConfigured) as error:
        return (
            "the release's slots start with this process's environment and would refuse it: "
            f"{error}"
        )
    for environment in environments:
        local = [ref for ref in environment.proxy_refs() if not tcp_admin_address(ref.admin_socket)]
        missing = infrastructure.haproxy_missing() if local else ""
        if missing:
            return f"{environment.name} has its proxy on this machine, but {missing}"
    return None
