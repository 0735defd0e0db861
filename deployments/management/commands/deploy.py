"""``manage.py deploy <release>``: runs the pipeline for a release (here, or queued)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.management.commands._common import operator_name, release_by_reference
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.reports import run_report_markdown
from deployments.services import DeploymentError


class Command(BaseCommand):
    help = "Deploy a release through the health-gated blue-green pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release", help="r3, 3 or a git SHA of a release")
        parser.add_argument(
            "--queue", action="store_true", help="hand the run to a Celery worker and return"
        )

    def handle(self, *args: object, **options: object) -> None:
        release = release_by_reference(str(options["release"]))
        try:
            run = pipeline_run_create(release=release, actor_name=operator_name())
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        if options["queue"]:
            from deployments.tasks import pipeline_run_task

            pipeline_run_task.delay(run.pk)
            self.stdout.write(f"queued run #{run.pk} of {release.label}")
            return
        self.stdout.write(f"run #{run.pk} of {release.label} started")
        run = pipeline_run_execute(run_id=run.pk)
        self.stdout.write(run_report_markdown(run))
        if run.status == PipelineRun.Status.PAUSED:
            raise CommandError(
                f"run #{run.pk} is paused for an operator: retry, override or abort it at "
                f"/admin/deployments/pipelinerun/{run.pk}/change/"
            )
        if run.status != PipelineRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error}")
