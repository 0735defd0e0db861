from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deployments.adapters import get_infrastructure
from deployments.models import Environment


class Command(BaseCommand):
    help = (
        "Show what an environment's HAProxy really routes next to what the database believes, "
        "or start it on the recorded live slot."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("environment", help="staging or production")
        parser.add_argument("action", nargs="?", choices=["status", "start"], default="status")

    def handle(self, *args: Any, **options: Any) -> None:
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            raise CommandError(f"there is no environment {options['environment']!r}")
        infrastructure = get_infrastructure()
        if infrastructure.proxy(environment) is None:
            raise CommandError(
                f"{environment.name} has no proxy (environment_configure … --proxy sets one)"
            )
        if options["action"] == "start":
            infrastructure.proxy_start(environment, live_slot=environment.live_slot or "blue")
        proxy = infrastructure.proxy(environment)
        if not proxy.is_running():
            raise CommandError(
                f"{environment.name}: HAProxy is not running "
                f"(`manage.py proxy {environment.name} start` starts it on the live slot)"
            )
        routed = proxy.routed_slot()
        believed = environment.live_slot or "none"
        verdict = "agree" if routed == environment.live_slot else "DISAGREE"
        self.stdout.write(
            f"{environment.name}: HAProxy routes {routed or 'no single slot'}; "
            f"the database says {believed} ({verdict})"
        )
        for slot, state in sorted(proxy.server_states().items()):
            self.stdout.write(f"  {slot}: {state} (port {environment.port_of(slot)})")
