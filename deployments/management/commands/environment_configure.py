"""``manage.py environment_configure production --blue-port … --green-port …``, and the hosts
and proxies of an environment that spans machines (``--add-host``, ``--add-proxy``, …)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name
from deployments.models import Environment
from deployments.proxy import proxy_admin_socket
from deployments.services import (
    DeploymentError,
    environment_configure,
    environment_host_add,
    environment_host_remove,
    environment_host_set_enabled,
    environment_proxy_add,
    environment_proxy_remove,
    environment_proxy_set_enabled,
)


class Command(BaseCommand):
    help = (
        "Create or reconfigure an environment's slots and proxy (never its live state); add, "
        "disable, enable or remove its app hosts and proxies."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=Environment.Name.values)
        parser.add_argument("--blue-port", type=int, help="required when creating")
        parser.add_argument("--green-port", type=int, help="required when creating")
        parser.add_argument("--listen-port", type=int)
        parser.add_argument("--admin-socket", help="HAProxy's admin socket")
        parser.add_argument(
            "--proxy",
            action="store_true",
            help="put HAProxy in front (its admin socket under SWEDIFY_DATA_DIR/proxy/)",
        )
        parser.add_argument("--dns-ttl-seconds", type=int)
        hosts = parser.add_argument_group("several machines")
        hosts.add_argument(
            "--add-host",
            metavar="ADDRESS",
            action="append",
            default=[],
            help="an app host (its agent consumes deploy.ADDRESS); slots on --blue-port and "
            "--green-port unless --host-blue-port/--host-green-port say otherwise",
        )
        hosts.add_argument("--host-blue-port", type=int)
        hosts.add_argument("--host-green-port", type=int)
        for verb in ("disable", "enable", "remove"):
            hosts.add_argument(f"--{verb}-host", metavar="ADDRESS", action="append", default=[])
        hosts.add_argument(
            "--add-proxy",
            metavar="NAME",
            help="an HAProxy named NAME on --proxy-address:--proxy-port",
        )
        hosts.add_argument("--proxy-address", default="127.0.0.1")
        hosts.add_argument("--proxy-port", type=int)
        hosts.add_argument(
            "--proxy-admin",
            default="",
            help="its runtime API as ADDRESS:PORT (a proxy on another machine)",
        )
        for verb in ("disable", "enable", "remove"):
            hosts.add_argument(f"--{verb}-proxy", metavar="NAME", action="append", default=[])

    def handle(self, *args: object, **options: object) -> None:
        try:
            environment = self._environment(options)
            self._hosts_and_proxies(environment, options)
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        hosts = ", ".join(
            f"{h.address} (blue {h.blue_port}, green {h.green_port})"
            for h in environment.app_hosts()
        )
        proxies = ", ".join(str(p) for p in environment.proxy_refs()) or "none"
        self.stdout.write(f"{environment.name}: hosts {hosts}; proxies {proxies}")

    def _environment(self, options: dict) -> Environment:
        name = str(options["name"])
        current = Environment.objects.filter(name=name).first()

        def value(option: str, default: object) -> object:
            given = options[option]
            if given is not None:
                return given
            return getattr(current, option) if current is not None else default

        blue, green = value("blue_port", None), value("green_port", None)
        if blue is None or green is None:
            raise CommandError(f"{name} does not exist yet: give --blue-port and --green-port")
        listen_port = int(value("listen_port", 0))
        admin_socket = str(value("admin_socket", ""))
        if options["proxy"]:
            if not listen_port:
                raise CommandError("--proxy needs --listen-port")
            admin_socket = str(proxy_admin_socket(environment=name))
        changes = [
            o
            for o in ("blue_port", "green_port", "listen_port", "admin_socket", "dns_ttl_seconds")
            if options[o] is not None
        ]
        if current is not None and not changes and not options["proxy"]:
            return current
        return environment_configure(
            name=name,
            blue_port=int(blue),
            green_port=int(green),
            listen_port=listen_port,
            admin_socket=admin_socket,
            dns_ttl_seconds=int(value("dns_ttl_seconds", 0)),
            actor_name=operator_name(),
        )

    def _hosts_and_proxies(self, environment: Environment, options: dict) -> None:
        actor_name = operator_name()
        for address in options["add_host"]:
            environment_host_add(
                environment=environment,
                address=address,
                blue_port=options["host_blue_port"] or environment.blue_port,
                green_port=options["host_green_port"] or environment.green_port,
                actor_name=actor_name,
            )
        for address in options["disable_host"]:
            environment_host_set_enabled(
                environment=environment, address=address, enabled=False, actor_name=actor_name
            )
        for address in options["enable_host"]:
            environment_host_set_enabled(
                environment=environment, address=address, enabled=True, actor_name=actor_name
            )
        for address in options["remove_host"]:
            environment_host_remove(environment=environment, address=address, actor_name=actor_name)
        if options["add_proxy"]:
            if not options["proxy_port"]:
                raise CommandError("--add-proxy needs --proxy-port")
            environment_proxy_add(
                environment=environment,
                name=str(options["add_proxy"]),
                address=str(options["proxy_address"]),
                listen_port=int(options["proxy_port"]),
                admin_socket=str(options["proxy_admin"]),
                actor_name=actor_name,
            )
        for name in options["disable_proxy"]:
            environment_proxy_set_enabled(
                environment=environment, name=name, enabled=False, actor_name=actor_name
            )
        for name in options["enable_proxy"]:
            environment_proxy_set_enabled(
                environment=environment, name=name, enabled=True, actor_name=actor_name
            )
        for name in options["remove_proxy"]:
            environment_proxy_remove(environment=environment, name=name, actor_name=actor_name)
