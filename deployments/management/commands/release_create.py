"""``manage.py release_create [--sha HEAD]``: records the next release of this repository."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.git import GitError, git
from deployments.management.commands._common import operator_name
from deployments.models import Release
from deployments.releases import release_migrations_inspect
from deployments.services import DeploymentError, release_create


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
            sha = git("rev-parse", "--verify", f"{options['sha']}^{{commit}}")
            previous = Release.objects.order_by("-version").first()
            safety = release_migrations_inspect(
                previous_sha=previous.git_sha if previous else None, sha=sha
            )
        except GitError as error:
            raise CommandError(str(error)) from None
        unsafe_reason = str(options["not_rollback_safe"]) or safety.unsafe_reason
        try:
            release = release_create(
                git_sha=sha,
                notes=str(options["notes"]),
                rollback_safe=not unsafe_reason,
                rollback_unsafe_reason=unsafe_reason,
                migrations=safety.migrations,
                actor_name=operator_name(),
            )
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        safe = "rollback-safe" if release.rollback_safe else f"NOT rollback-safe: {unsafe_reason}"
        self.stdout.write(f"release {release.label} = {sha[:12]} ({safe})")
