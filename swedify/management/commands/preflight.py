from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from swedify.preflight import ConfigurationError, run_preflight


class Command(BaseCommand):
    help = "Check the configuration (secret, database, Redis) and say what is wrong in one line."

    requires_system_checks: list[str] = []

    def handle(self, *args: object, **options: object) -> None:
        try:
            run_preflight()
        except ConfigurationError as error:
            raise CommandError(f"configuration error: {error}") from None
        self.stdout.write("configuration ok")
