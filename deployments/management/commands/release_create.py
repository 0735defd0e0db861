"""``manage.py release_create [--sha HEAD]``: records the next release of this repository."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name
from deployments.releases import release_create_from_git
from deployments.services import DeploymentError


class Command(BaseCommand):
    help = "Record the next release (immutable, increasing version) for a git commit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sha", default="HEAD", help="commit (default HEAD)")
        parser.add_argument("--notes", default="")
        parser.add_argument(
            "--not-rollback-safe",
            metavar="REASON",
            default="",
            help="mark it not rollback-safe (detected automatically for contracting migrations)",
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            release = release_create_from_git(
                ref=str(options["sha"]),
                notes=str(options["notes"]),
                not_rollback_safe=str(options["not_rollback_safe"]),
                actor_name=operator_name(),
            )
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        safe = (
            "rollback-safe"
            if release.rollback_safe
            else f"NOT rollback-safe: {release.rollback_unsafe_reason}"
        )
        self.stdout.write(f"release {release.label} = {release.git_sha[:12]} ({safe})")
