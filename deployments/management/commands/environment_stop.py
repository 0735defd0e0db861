"""``manage.py environment_stop staging production`` (or ``--all``): stops the HAProxies on
this machine and every slot of those environments, which stopping ``make run`` leaves
running."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name
from deployments.models import Environment
from deployments.services import DeploymentError
from deployments.shutdown import environment_stop


class Command(BaseCommand):
    help = (
        "Stop the HAProxies on this machine and the blue and green slots on every host of "
        "the named environments (the database keeps their live release)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="staging, production")
        parser.add_argument("--all", action="store_true", help="every configured environment")

    def handle(self, *args: object, **options: object) -> None:
        names = list(options["names"])  # type: ignore[arg-type]
        if bool(names) == bool(options["all"]):
            raise CommandError("name the environments to stop (staging, production) or --all")
        environments = Environment.objects.order_by("name")
        if names:
            environments = environments.filter(name__in=names)
            missing = sorted(set(names) - {e.name for e in environments})
            if missing:
                raise CommandError(f"there is no environment {', '.join(missing)}")
        failed = []
        for environment in environments:
            try:
                notes = environment_stop(environment=environment, actor_name=operator_name())
            except DeploymentError as error:
                failed.append(f"{environment.name}: {error}")
                continue
            for note in notes:
                self.stdout.write(f"{environment.name}: {note}")
            failed += [f"{environment.name}: {n}" for n in notes if "NOT stopped" in n]
        if failed:
            raise CommandError("; ".join(failed))
