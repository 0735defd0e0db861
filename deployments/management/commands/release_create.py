"""``manage.py release_create [--sha HEAD]``: records the next release of this repository."""

from __future__ import annotations

import re
import subprocess

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name
from deployments.models import Release
from deployments.services import DeploymentError, release_create

# Operations the previous release's code cannot survive (expand-then-contract is broken).
CONTRACTING_OPERATIONS = re.compile(
    r"migrations\.(RemoveField|DeleteModel|RenameField|RenameModel|AlterField)\("
)


def _git(*args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=20
    )
    if completed.returncode != 0:
        raise CommandError(f"git {' '.join(args)}: {completed.stderr.strip()}")
    return completed.stdout


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
        sha = _git("rev-parse", "--verify", f"{options['sha']}^{{commit}}").strip()
        previous = Release.objects.order_by("-version").first()
        migrations: list[str] = []
        unsafe_reason = str(options["not_rollback_safe"])
        if previous is not None and previous.git_sha != sha:
            changed = _git("diff", "--name-only", "--diff-filter=A", f"{previous.git_sha}..{sha}")
            migrations = [
                path for path in changed.split() if "/migrations/" in path and path.endswith(".py")
            ]
            contracting = [
                path
                for path in migrations
                if CONTRACTING_OPERATIONS.search(_git("show", f"{sha}:{path}"))
            ]
            if contracting and not unsafe_reason:
                unsafe_reason = "contracting migrations: " + ", ".join(contracting)
        try:
            release = release_create(
                git_sha=sha,
                notes=str(options["notes"]),
                rollback_safe=not unsafe_reason,
                rollback_unsafe_reason=unsafe_reason,
                migrations=migrations,
                actor_name=operator_name(),
            )
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        safe = "rollback-safe" if release.rollback_safe else f"NOT rollback-safe: {unsafe_reason}"
        self.stdout.write(f"release {release.label} = {sha[:12]} ({safe})")
