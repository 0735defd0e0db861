"""``manage.py deploy <release>``: runs the pipeline for a release (here, or queued)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments.adapters import get_infrastructure
from deployments.deploy_checks import deploy_refusal
from deployments.management.commands._common import operator_name, release_by_reference
from deployments.models import Environment, PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.reports import run_report_markdown
from deployments.services import DeploymentError


class Command(BaseCommand):
    help = "Deploy a release through the health-gated blue-green pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release", nargs="?", help="r3, 3 or a git SHA of a release")
        parser.add_argument(
            "--queue", action="store_true", help="hand the run to a Celery worker and return"
        )
        parser.add_argument(
            "--resume",
            type=int,
            metavar="RUN",
            help="execute a queued run here (one the broker could not take)",
        )

    def handle(self, *args: object, **options: object) -> None:
        if not options["queue"]:
            # This process starts the slots: refuse now, not after the quality gate.
            refusal = deploy_refusal(
                environments=list(Environment.objects.all()), infrastructure=get_infrastructure()
            )
            if refusal:
                raise CommandError(
                    f"{refusal}. Export the web app's settings in this shell first "
                    "(README: Deploying)"
                )
        if options["resume"]:
            run = self._execute(int(options["resume"]))
            return
        if not options["release"]:
            raise CommandError("name a release (r3, 3 or a git SHA) or --resume a run")
        release = release_by_reference(str(options["release"]))
        queue = bool(options["queue"])
        try:
            run = pipeline_run_create(release=release, actor_name=operator_name(), queue=queue)
        except DeploymentError as error:
            raise CommandError(str(error)) from None
        if queue:
            run.refresh_from_db()
            self.stdout.write(f"queued run #{run.pk} of {release.label}")
            for warning in run.warnings:
                self.stderr.write(warning)
            return
        self.stdout.write(f"run #{run.pk} of {release.label} started")
        self._execute(run.pk)

    def _execute(self, run_id: int) -> PipelineRun:
        run = pipeline_run_execute(run_id=run_id)
        if run is None:
            raise CommandError(f"there is no run #{run_id}")
        self.stdout.write(run_report_markdown(run))
        if run.status == PipelineRun.Status.PAUSED:
            raise CommandError(
                f"run #{run.pk} is paused for an operator: retry, override or abort it at "
                f"/admin/deployments/pipelinerun/{run.pk}/change/"
            )
        if run.status != PipelineRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error}")
        return run
