"""The "Deployment Report" for a pipeline run, in Markdown, with durations and flags."""

from __future__ import annotations

from deployments.models import PipelineRun, Rollback, StageRun
from deployments.pipeline import RUN_BUDGET_SECONDS
from deployments.services import ROLLBACK_BUDGET


def run_over_budget(run: PipelineRun) -> bool:
    # The budget is about putting a release in front of traffic: the analysis window that
    # watches it afterwards (five minutes by default) is not deploy time.
    duration = run.deploy_seconds
    return duration is not None and duration > RUN_BUDGET_SECONDS


def rollback_over_budget(rollback: Rollback) -> bool:
    return (
        rollback.duration_seconds is not None
        and rollback.duration_seconds > ROLLBACK_BUDGET.total_seconds()
    )


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _paused(run: PipelineRun) -> str:
    """The time the run waited for an operator, when it did: not time the pipeline worked."""
    paused = run.paused_seconds
    if paused < 0.05:
        return ""
    working = _seconds(run.active_seconds)
    return f" (of which {_seconds(paused)} paused for an operator, {working} working)"


def _status(stage: StageRun) -> str:
    if stage.outcome == StageRun.Outcome.SUCCEEDED:
        return "success" if stage.action_applied != StageRun.Applied.RETRY else "success (retried)"
    if stage.outcome == StageRun.Outcome.FAILED:
        applied = stage.action_applied or "failed"
        return {
            "block": "failure (blocked)",
            "continue": "failure (continued with warning)",
            "abort": "failure (aborted)",
            "skip": "failure (skipped with warning)",
            "override": "failure (overridden)",
        }.get(applied, "failure")
    return {"skipped": "skipped", "pending": "pending", "running": "in progress"}[stage.outcome]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def run_report_markdown(run: PipelineRun) -> str:
    stages = list(run.stages.order_by("position"))
    rollbacks = list(run.rollbacks.select_related("from_release", "to_release"))
    lines = [
        "# Deployment Report",
        "",
        f"Run #{run.pk} of release {run.release.label} ({run.release.git_sha[:12]}), "
        f"triggered by {run.triggered_by_name or 'system'}: **{run.status}**, "
        f"total {_seconds(run.duration_seconds)}{_paused(run)}.",
    ]
    if run_over_budget(run):
        lines.append("")
        lines.append(f"**FLAG: the run took longer than {RUN_BUDGET_SECONDS // 60} minutes.**")
    lines += [
        "",
        "| Stage | Status |",
        "|-------|--------|",
        *(f"| {stage.name} | {_status(stage)} |" for stage in stages),
        "",
        "## Durations",
        "",
        "| Stage | Attempts | Duration | Summary |",
        "|-------|----------|----------|---------|",
        *(
            f"| {stage.name} | {stage.attempts}/{stage.max_attempts} | "
            f"{_seconds(stage.duration_seconds)} | {_cell(stage.summary)} |"
            for stage in stages
        ),
    ]
    overrides = [s for s in stages if s.action_applied == StageRun.Applied.OVERRIDE]
    if overrides:
        lines += ["", "## Overrides", ""]
        lines += [
            f"- {s.name}: by {s.overridden_by or 'unknown'}: {_cell(s.override_reason)}"
            for s in overrides
        ]
    if run.warnings:
        lines += ["", "## Warnings", "", *(f"- {_cell(w)}" for w in run.warnings)]
    if rollbacks:
        lines += ["", "## Rollbacks", ""]
        for rollback in rollbacks:
            flag = " **FLAG: over the 1 minute budget**" if rollback_over_budget(rollback) else ""
            lines.append(
                f"- #{rollback.pk} {rollback.trigger} {rollback.mode or '—'} "
                f"{rollback.from_release.label} → {rollback.to_release.label}: "
                f"{rollback.status} in {_seconds(rollback.duration_seconds)}{flag}"
            )
    if run.error:
        lines += ["", f"Error: {_cell(run.error)}"]
    return "\n".join(lines) + "\n"
