"""Expand-only: a stage run keeps its kind, and the deploy lock names its run by a real key.

Both columns are nullable or have a database default, so the previous release (which knows
neither) keeps inserting stage runs and taking locks against this schema. Existing rows are
backfilled: a stage's kind from the pipeline's fixed key → kind table of that time, a held
run lock from its ``run:<id>`` label (the last time that label is parsed).
"""

import django.db.models.deletion
from django.db import migrations, models

# The kinds of the stage keys that existed when this migration was written.
KINDS = {
    "quality": "commands",
    "security": "commands",
    "staging_deploy": "deploy",
    "staging_health": "health",
    "production_deploy": "deploy",
    "production_health": "health",
    "cutover": "cutover",
    "cleanup": "cleanup",
}


def backfill(apps, schema_editor):
    StageRun = apps.get_model("deployments", "StageRun")
    Environment = apps.get_model("deployments", "Environment")
    PipelineRun = apps.get_model("deployments", "PipelineRun")
    for key, kind in KINDS.items():
        StageRun.objects.filter(key=key, kind="").update(kind=kind)
    for environment in Environment.objects.filter(lock_holder__startswith="run:"):
        number = environment.lock_holder[4:]
        if number.isdigit() and PipelineRun.objects.filter(pk=int(number)).exists():
            Environment.objects.filter(pk=environment.pk).update(lock_run_id=int(number))


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="lock_run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="deployments.pipelinerun",
            ),
        ),
        migrations.AddField(
            model_name="stagerun",
            name="kind",
            field=models.CharField(blank=True, db_default="", default="", max_length=16),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
