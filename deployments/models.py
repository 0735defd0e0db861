"""What the operators' side records: environments and their slots, releases, pipeline runs and
their stages, deployments with GitHub-style statuses, health probes, rollbacks and the audit
trail.

History (releases, statuses, health checks, rollbacks, audit events, finished runs) is
append-only: services add rows and move state forward with compare-and-set; nothing edits the
past, and the admin offers no add, change or delete for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Slot(models.TextChoices):
    BLUE = "blue"
    GREEN = "green"


def other_slot(slot: str) -> str:
    return Slot.GREEN if slot == Slot.BLUE else Slot.BLUE


class Environment(models.Model):
    class Name(models.TextChoices):
        STAGING = "staging"
        PRODUCTION = "production"

    name = models.CharField(max_length=16, choices=Name.choices, unique=True)
    # The proxy's public port on loopback (0: no proxy; the live slot is reached directly).
    listen_port = models.PositiveIntegerField(default=0)
    admin_socket = models.CharField(max_length=500, blank=True)
    blue_port = models.PositiveIntegerField()
    green_port = models.PositiveIntegerField()
    # Blank until the first release goes live.
    live_slot = models.CharField(max_length=8, choices=Slot.choices, blank=True)
    live_release = models.ForeignKey(
        "Release", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The deploy lock: taken and released only by services, with compare-and-set.
    # ``lock_holder`` is the label operators read ("run:12", "rollback:production:…");
    # ``lock_run`` is the run that holds it, when a run does (never parsed from the label).
    lock_holder = models.CharField(max_length=64, blank=True)
    lock_run = models.ForeignKey(
        "PipelineRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    # A remote (DNS) cutover: both slots keep serving for at least this long afterwards.
    dns_ttl_seconds = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def port_of(self, slot: str) -> int:
        return self.blue_port if slot == Slot.BLUE else self.green_port

    @property
    def idle_slot(self) -> str:
        return other_slot(self.live_slot) if self.live_slot else Slot.BLUE

    def app_hosts(self) -> list[HostRef]:
        """The hosts a deploy reaches: the enabled ``AppHost`` rows, or, while there are
        none, the single loopback host that this row's ports describe."""
        rows = [h for h in self.hosts.all() if h.enabled]
        if rows:
            return [HostRef(h.address, h.blue_port, h.green_port, h.pk) for h in rows]
        return [HostRef(LOCAL_ADDRESS, self.blue_port, self.green_port, None)]

    def proxy_refs(self) -> list[ProxyRef]:
        """The proxies a cutover switches: the enabled ``ProxyInstance`` rows, or, while
        there are none, the one this row's admin socket names (none without one)."""
        rows = [p for p in self.proxies.all() if p.enabled]
        if rows:
            return [ProxyRef(p.name, p.address, p.listen_port, p.admin_socket, p.pk) for p in rows]
        if not self.admin_socket:
            return []
        return [ProxyRef(self.name, LOCAL_ADDRESS, self.listen_port, self.admin_socket, None)]


# Slots on this address run on the control machine itself (deployments.slots); any other
# address is a host with a deploy agent (deployments.agent).
LOCAL_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class HostRef:
    """One app host of an environment as deploys see it (a row, or the single-host default)."""

    address: str
    blue_port: int
    green_port: int
    pk: int | None = None

    def port_of(self, slot: str) -> int:
        return self.blue_port if slot == Slot.BLUE else self.green_port

    @property
    def local(self) -> bool:
        return self.address == LOCAL_ADDRESS

    def __str__(self) -> str:
        return self.address


@dataclass(frozen=True)
class ProxyRef:
    """One HAProxy in front of an environment (a row, or the single-host default)."""

    name: str
    address: str
    listen_port: int
    admin_socket: str
    pk: int | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.address}:{self.listen_port})"


class AppHost(models.Model):
    """A machine that runs the environment's blue and green slots (its deploy agent listens
    on the queue ``deploy.<address>``)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="hosts")
    address = models.CharField(max_length=255)
    blue_port = models.PositiveIntegerField()
    green_port = models.PositiveIntegerField()
    # A disabled host gets no deploys and is left out of the proxies' configuration.
    enabled = models.BooleanField(default=True)
    # The periodic probe's latest view of the live slot on this host (null: never probed).
    probe_ok = models.BooleanField(null=True, blank=True)
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_error = models.TextField(blank=True)

    class Meta:
        ordering = ["environment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "address"], name="host_once_per_env")
        ]

    def __str__(self) -> str:
        return f"{self.environment}/{self.address}"


class ProxyInstance(models.Model):
    """An HAProxy in front of the environment, on a machine of its own; each holds every
    host's blue and green server. What sits in front of the proxies (DNS with several
    records, or a virtual IP) is outside this product."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="proxies")
    # Names its files (configuration, state, pid) under SWEDIFY_DATA_DIR/proxy/.
    name = models.CharField(max_length=40, unique=True)
    address = models.CharField(max_length=255, default=LOCAL_ADDRESS)
    listen_port = models.PositiveIntegerField()
    admin_socket = models.CharField(max_length=500)
    enabled = models.BooleanField(default=True)
    probe_ok = models.BooleanField(null=True, blank=True)
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_error = models.TextField(blank=True)

    class Meta:
        ordering = ["environment", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.address}:{self.listen_port})"


class Release(models.Model):
    """Immutable: a new version is a new row; a rollback points at an old row."""

    version = models.PositiveIntegerField(unique=True)
    git_sha = models.CharField(max_length=40)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)
    # False when the previous release's code cannot run against this one's migrations.
    rollback_safe = models.BooleanField(default=True)
    rollback_unsafe_reason = models.TextField(blank=True)
    migrations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.label} ({self.git_sha[:12]})"

    @property
    def label(self) -> str:
        """What the slot serving this release reports as its version in /health."""
        return f"r{self.version}"


class PipelineRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ABORTED = "aborted"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.PAUSED)

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="runs")
    environments = models.ManyToManyField(Environment, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    triggered_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Where the runner is and what it did that later stages (and an abort) need to know:
    # the slots it started, the slot that served before the cutover, whether traffic moved.
    context = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run #{self.pk} of {self.release.label}"

    @property
    def lock_name(self) -> str:
        return f"run:{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def paused_seconds(self) -> float:
        """The time the run sat paused for an operator (``pipeline`` records each pause in
        ``context``); a pause still open counts until now."""
        total = float(self.context.get("paused_seconds", 0.0))
        opened = self.context.get("paused_at")
        if opened and self.status == self.Status.PAUSED:
            total += max(0.0, (timezone.now() - datetime.fromisoformat(opened)).total_seconds())
        return total

    @property
    def active_seconds(self) -> float | None:
        """The duration without the time paused; for a run still going, so far."""
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds() - self.paused_seconds)

    @property
    def deploy_seconds(self) -> float | None:
        """The duration without the analysis window and the time paused for an operator:
        the time a deploy takes to put the release in front of traffic and clean up (what the
        deploy-time budget is about)."""
        total = self.duration_seconds
        if total is None:
            return None
        watched = sum(
            stage.duration_seconds or 0.0 for stage in self.stages.filter(kind="analysis")
        )
        return max(0.0, total - watched - self.paused_seconds)


class FailureAction(models.TextChoices):
    BLOCK = "block"
    CONTINUE = "continue"
    ABORT = "abort"
    SKIP = "skip"


class StageRun(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    class Applied(models.TextChoices):
        NONE = "", "—"
        BLOCK = "block"
        CONTINUE = "continue"
        ABORT = "abort"
        SKIP = "skip"
        RETRY = "retry"
        OVERRIDE = "override"

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="stages")
    key = models.CharField(max_length=32)
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField()
    # Configured (copied from the pipeline definition at run start) ...
    # Which handler runs it (commands, deploy, health, cutover, cleanup). Blank only on rows
    # written by a release older than this field (the database default lets that release
    # keep inserting); such a row falls back to the pipeline's definition of its key.
    kind = models.CharField(max_length=16, blank=True, default="", db_default="")
    failure_action = models.CharField(max_length=16, choices=FailureAction.choices)
    enabled = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(default=1)
    delay_seconds = models.FloatField(default=0)
    timeout_seconds = models.FloatField(default=600)
    params = models.JSONField(default=dict, blank=True)
    # ... and what happened: the raw outcome and the action applied are separate fields.
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    action_applied = models.CharField(
        max_length=16, choices=Applied.choices, default=Applied.NONE, blank=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True)
    log = models.TextField(blank=True)
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    override_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="stage_position_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.outcome})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Rollback(models.Model):
    class Trigger(models.TextChoices):
        MANUAL = "manual"
        AUTOMATIC = "automatic"

    class Mode(models.TextChoices):
        SWITCH_BACK = "switch_back"
        REDEPLOY = "redeploy"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    from_release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="+")
    to_release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
    run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
    )
    reason = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_name = models.CharField(max_length=150, blank=True)
    confirmed_unsafe = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"rollback #{self.pk}: {self.from_release.label} → {self.to_release.label}"


class Deployment(models.Model):
    """One release started in one slot of one environment (GitHub Deployments' shape)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        SUCCESS = "success"
        FAILURE = "failure"  # the deploy failed (unhealthy, refused)
        ERROR = "error"  # the tooling broke
        INACTIVE = "inactive"  # superseded by a later deployment

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="deployments"
    )
    slot = models.CharField(max_length=8, choices=Slot.choices)
    run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.PROTECT, related_name="deployments"
    )
    rollback = models.ForeignKey(
        Rollback, null=True, blank=True, on_delete=models.PROTECT, related_name="deployments"
    )
    # The latest status, kept beside the append-only list for cheap filtering.
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["environment", "state"])]

    def __str__(self) -> str:
        return f"{self.release.label} → {self.environment}/{self.slot}"


class DeploymentStatus(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="statuses")
    state = models.CharField(max_length=16, choices=Deployment.State.choices)
    description = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "deployment statuses"

    def __str__(self) -> str:
        return f"{self.deployment}: {self.state}"


class HealthCheck(models.Model):
    """One probe attempt of /health?detailed=true (by a pipeline stage or the periodic probe)."""

    class Source(models.TextChoices):
        PERIODIC = "periodic"
        PIPELINE = "pipeline"
        ROLLBACK = "rollback"

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="health_checks"
    )
    slot = models.CharField(max_length=8, choices=Slot.choices, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    url = models.CharField(max_length=500)
    ok = models.BooleanField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, blank=True)  # ok | degraded | down from the body
    version = models.CharField(max_length=64, blank=True)
    latency_ms = models.FloatField()
    components = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["environment", "-at"], name="healthcheck_env_at"),
            models.Index(fields=["environment", "ok", "-at"], name="healthcheck_env_ok_at"),
        ]

    def __str__(self) -> str:
        return f"{self.environment} {'ok' if self.ok else 'failing'} at {self.at:%Y-%m-%d %H:%M}"


class AuditEvent(models.Model):
    """Who did what, when: written by services, never edited."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
