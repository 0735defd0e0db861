"""``manage.py rollback --reason "…"``: puts the previous release back in front of traffic."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name, release_by_reference
from deployments.models import Environment, Rollback
from deployments.rollbacks import rollback_start, rollback_target
from deployments.services import DeploymentError


class Command(BaseCommand):
    help = "Roll an environment back to its previous release (switch back, or redeploy)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", default=Environment.Name.PRODUCTION)
        parser.add_argument("--to", dest="to_release", help="release to go back to (r3, SHA)")
        parser.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        parser.add_argument(
            "--confirm-unsafe",
            action="store_true",
            help="roll back even over releases marked not rollback-safe",
        )

    def handle(self, *args: object, **options: object) -> None:
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            raise CommandError(f"there is no {options['environment']} environment")
        target = (
            release_by_reference(str(options["to_release"]))
            if options["to_release"]
            else rollback_target(environment=environment)
        )
        try:
            rollback = rollback_start(
                environment=environment,
                reason=str(options["reason"]),
                actor_name=operator_name(),
                to_release=target,
                confirm_unsafe=bool(options["confirm_unsafe"]),
            )
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        line = (
            f"rollback #{rollback.pk} {rollback.from_release.label} → "
            f"{rollback.to_release.label} ({rollback.mode}): {rollback.status} "
            f"in {rollback.duration_seconds:.2f} s"
        )
        if rollback.status != Rollback.Status.SUCCEEDED:
            raise CommandError(f"{line}: {rollback.error}")
        self.stdout.write(line)
