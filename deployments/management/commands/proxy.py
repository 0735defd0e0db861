"""``manage.py proxy <environment> [status|start|reload]``: what every HAProxy in front of an
environment really routes next to what the database believes, difference by difference."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deployments.adapters import get_infrastructure
from deployments.models import Environment
from deployments.proxy import proxy_config_render, proxy_reload, tcp_admin_address
from deployments.selectors import proxy_differences


class Command(BaseCommand):
    help = (
        "Compare every HAProxy of an environment with the database and name each difference; "
        "`start` starts the stopped ones on the live slot, `reload` gives the running ones "
        "the enabled hosts' servers without dropping a connection."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("environment", help="staging or production")
        parser.add_argument(
            "action", nargs="?", choices=["status", "start", "reload", "config"], default="status"
        )
        parser.add_argument(
            "--name", help="with config: the proxy whose haproxy.cfg to print (default: all)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            raise CommandError(f"there is no environment {options['environment']!r}")
        infrastructure = get_infrastructure()
        proxies = infrastructure.environment_proxies(environment)
        if not proxies:
            raise CommandError(
                f"{environment.name} has no proxy (environment_configure … --proxy sets one)"
            )
        live = environment.live_slot or "blue"
        if options["action"] == "config":
            self._config(environment, proxies, live, options["name"])
            return
        if options["action"] == "start":
            for ref, proxy in proxies:
                if proxy.is_running():
                    continue
                if tcp_admin_address(ref.admin_socket):
                    self.stdout.write(
                        f"{ref}: on another machine; install `manage.py proxy "
                        f"{environment.name} config --name {ref.name}` there and start it"
                    )
                    continue
                infrastructure.proxy_start(environment, live_slot=live, ref=ref)
        if options["action"] == "reload":
            self._reload(environment, proxies, live)
        stopped = []
        for ref, proxy in proxies:
            label = environment.name if ref.pk is None else f"{environment.name} proxy {ref}"
            if not proxy.is_running():
                stopped.append(label)
                self.stdout.write(f"{label}: HAProxy is not running")
                continue
            routed = proxy.routed_slot()
            believed = environment.live_slot or "none"
            verdict = "agree" if routed == environment.live_slot else "DISAGREE"
            self.stdout.write(
                f"{label}: HAProxy routes {routed or 'no single slot'}; "
                f"the database says {believed} ({verdict})"
            )
            for difference in proxy_differences(environment=environment, ref=ref, proxy=proxy):
                self.stdout.write(f"  DIFFERENCE: {difference}")
            for name, state in sorted(proxy.server_states().items()):
                self.stdout.write(f"  {name}: {state}{self._where(environment, ref, proxy, name)}")
        if stopped:
            raise CommandError(
                f"{', '.join(stopped)}: HAProxy is not running "
                f"(`manage.py proxy {environment.name} start` starts it on the live slot)"
            )

    def _where(self, environment: Environment, ref: Any, proxy: Any, name: str) -> str:
        if ref.pk is None:
            return f" (port {environment.port_of(name)})"
        server = proxy.servers()[name]
        return f" ({server.address}:{server.port}, {'up' if server.up else 'DOWN'})"

    def _config(self, environment: Environment, proxies: list, live: str, name: str | None) -> None:
        servers = [(h.address, h.blue_port, h.green_port) for h in environment.app_hosts()]
        chosen = [ref for ref, _ in proxies if ref.pk is not None and name in (None, ref.name)]
        if not chosen:
            raise CommandError(f"{environment.name} lists no proxy {name or ''}".strip())
        for ref in chosen:
            self.stdout.write(
                proxy_config_render(
                    name=ref.name,
                    listen_address=ref.address,
                    listen_port=ref.listen_port,
                    admin_socket=ref.admin_socket,
                    servers=servers,
                    live_slot=live,
                )
            )

    def _reload(self, environment: Environment, proxies: list, live: str) -> None:
        servers = [(h.address, h.blue_port, h.green_port) for h in environment.app_hosts()]
        for ref, proxy in proxies:
            if ref.pk is None or not proxy.is_running():
                continue
            if tcp_admin_address(ref.admin_socket):
                self.stdout.write(
                    f"{ref}: on another machine; install the new `config` there and reload it "
                    "(systemctl reload haproxy)"
                )
                continue
            proxy_reload(environment=ref.name, servers=servers, live_slot=live)
            self.stdout.write(f"{ref}: reloaded with {len(servers)} host(s)")
