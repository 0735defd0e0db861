"""``manage.py environment_configure production --blue-port … --green-port …``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name
from deployments.models import Environment
from deployments.services import DeploymentError, environment_configure


class Command(BaseCommand):
    help = "Create or reconfigure an environment's slots and proxy (never its live state)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=Environment.Name.values)
        parser.add_argument("--blue-port", type=int, required=True)
        parser.add_argument("--green-port", type=int, required=True)
        parser.add_argument("--listen-port", type=int, default=0)
        parser.add_argument("--admin-socket", default="", help="HAProxy's admin socket")
        parser.add_argument(
            "--proxy",
            action="store_true",
            help="put HAProxy in front (its admin socket under SWEDIFY_DATA_DIR/proxy/)",
        )
        parser.add_argument("--dns-ttl-seconds", type=int, default=0)

    def handle(self, *args: object, **options: object) -> None:
        if options["proxy"]:
            from deployments.proxy import proxy_admin_socket

            if not options["listen_port"]:
                raise CommandError("--proxy needs --listen-port")
            options["admin_socket"] = str(proxy_admin_socket(environment=str(options["name"])))
        try:
            environment = environment_configure(
                name=str(options["name"]),
                blue_port=int(options["blue_port"]),
                green_port=int(options["green_port"]),
                listen_port=int(options["listen_port"]),
                admin_socket=str(options["admin_socket"]),
                dns_ttl_seconds=int(options["dns_ttl_seconds"]),
                actor_name=operator_name(),
            )
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{environment.name}: blue {environment.blue_port}, "
            f"green {environment.green_port}, proxy {environment.listen_port}"
        )
