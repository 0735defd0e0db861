"""Expand-only: environments may list app hosts and proxies. Two new tables; no existing
column changes, and an environment without rows keeps working from its own ports and admin
socket exactly as before (the previous release never reads the new tables)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0002_stage_kind_and_lock_run"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProxyInstance",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=40, unique=True)),
                ("address", models.CharField(default="127.0.0.1", max_length=255)),
                ("listen_port", models.PositiveIntegerField()),
                ("admin_socket", models.CharField(max_length=500)),
                ("enabled", models.BooleanField(default=True)),
                ("probe_ok", models.BooleanField(blank=True, null=True)),
                ("probed_at", models.DateTimeField(blank=True, null=True)),
                ("probe_error", models.TextField(blank=True)),
                (
                    "environment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="proxies",
                        to="deployments.environment",
                    ),
                ),
            ],
            options={
                "ordering": ["environment", "id"],
            },
        ),
        migrations.CreateModel(
            name="AppHost",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("address", models.CharField(max_length=255)),
                ("blue_port", models.PositiveIntegerField()),
                ("green_port", models.PositiveIntegerField()),
                ("enabled", models.BooleanField(default=True)),
                ("probe_ok", models.BooleanField(blank=True, null=True)),
                ("probed_at", models.DateTimeField(blank=True, null=True)),
                ("probe_error", models.TextField(blank=True)),
                (
                    "environment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="hosts",
                        to="deployments.environment",
                    ),
                ),
            ],
            options={
                "ordering": ["environment", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("environment", "address"), name="host_once_per_env"
                    )
                ],
            },
        ),
    ]
