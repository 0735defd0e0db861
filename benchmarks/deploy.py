"""Deploy benchmark: real gunicorn slots behind a real HAProxy on loopback, under load.

Measures, in one run: slot start time; cutover (``Proxy.switch_to``) and rollback by switching
back, each under keep-alive load, with the failed requests during each; and as the baseline
the naive deploy measured the same way (stop the serving process, start the new release on
its port). Prints the figures, the ratio to the baseline, and whether the targets hold
(rollback by switch-back < 5 s, zero failed requests). Exit status 1 when a target is missed.

Then, in a child process with a throwaway data dir and SQLite database (never the operator's
database or Redis), a full pipeline run (``deployments.pipeline``) of HEAD as the second release
of production, with the project's own suite as the quality gate, timed by stage while paced
keep-alive load runs through production's HAProxy and counts failed requests.

Then the same deploy across machines (``benchmarks.deploy_hosts``: three app hosts with their
own agents and two proxies on loopback addresses), printed as a table beside today's
single-host figures of this run.

Options: ``--rounds N`` (switch pairs timed, default 5); ``--no-pipeline`` (skip the full run);
``--no-hosts`` (skip the run across machines).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

OLD, NEW = "1.0.0", "1.0.1"
LOAD_THREADS = 4
LOAD_MAX_SECONDS = 15.0
PHASE_RESPONSES = 200
ROLLBACK_TARGET_SECONDS = 5.0


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")
    import django

    django.setup()


def _slot_env() -> dict[str, str]:
    from django.conf import settings

    if settings.DEBUG or settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return {}
    # The slots refuse the development key with DEBUG off; a throwaway key for the benchmark.
    return {"SECRET_KEY": f"benchmark-{uuid.uuid4().hex}"}


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks deploy")
    parser.add_argument("--rounds", type=int, default=5, help="switch pairs to time")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the full pipeline run")
    parser.add_argument("--no-hosts", action="store_true", help="skip the run across machines")
    parser.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pipeline_only:
        return _pipeline_main()
    _setup_django()

    from django.conf import settings

    from benchmarks.load import LoadGenerator
    from deployments import proxy as proxy_module
    from deployments.proxy import proxy_start, proxy_stop
    from deployments.slots import release_source, slot_start, slot_stop

    if not proxy_module.haproxy_installed():
        print(f"deploy benchmark: {proxy_module.INSTALL_HINT}", file=sys.stderr)
        return 1
    environment = f"bench{uuid.uuid4().hex[:8]}"
    sha = subprocess.run(
        ["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    slot_env = _slot_env()
    blue_port, green_port, listen_port = _free_port(), _free_port(), _free_port()
    url = f"http://127.0.0.1:{listen_port}"

    def load() -> LoadGenerator:
        return LoadGenerator(url, threads=LOAD_THREADS, max_seconds=LOAD_MAX_SECONDS)

    rows: list[tuple[str, str]] = []
    ok = True
    try:
        started = time.perf_counter()
        source: Path = release_source(git_sha=sha)
        rows.append(("release export (git archive)", _ms(time.perf_counter() - started)))
        slot_starts = []
        for slot, port, version in (("blue", blue_port, OLD), ("green", green_port, NEW)):
            started = time.perf_counter()
            slot_start(
                environment=environment,
                slot=slot,
                port=port,
                version=version,
                source_dir=source,
                env=slot_env,
            )
            slot_starts.append(time.perf_counter() - started)
        rows.append(("slot start (until /health answers)", _ms(statistics.median(slot_starts))))
        proxy = proxy_start(
            environment=environment,
            listen_port=listen_port,
            blue_port=blue_port,
            green_port=green_port,
            live_slot="blue",
        )
        proxy.switch_to("blue", check_timeout=5)  # waits for green's first health check

        # Ours: cutover and rollback by switch-back, each under its own load.
        cutovers, rollbacks = [], []
        with load() as cutover_load:
            cutover_load.wait_for(OLD, responses=PHASE_RESPONSES)
            cutovers.append(proxy.switch_to("green"))
            cutover_load.wait_for(NEW, responses=PHASE_RESPONSES)
        with load() as rollback_load:
            rollback_load.wait_for(NEW, responses=PHASE_RESPONSES)
            rollbacks.append(proxy.switch_to("blue"))
            rollback_load.wait_for(OLD, responses=PHASE_RESPONSES)
        for _ in range(max(args.rounds - 1, 0)):
            cutovers.append(proxy.switch_to("green"))
            rollbacks.append(proxy.switch_to("blue"))
        cutover_result, rollback_result = cutover_load.result, rollback_load.result

        # Baseline: the naive deploy, stop the serving slot and start the new release in place.
        with load() as naive_load:
            naive_load.wait_for(OLD, responses=PHASE_RESPONSES)
            started = time.perf_counter()
            slot_stop(environment=environment, slot="blue")
            slot_start(
                environment=environment,
                slot="blue",
                port=blue_port,
                version=NEW,
                source_dir=source,
                env=slot_env,
            )
            naive_seconds = time.perf_counter() - started
            naive_load.wait_for(NEW, responses=PHASE_RESPONSES)
        naive_result = naive_load.result
    finally:
        proxy_stop(environment=environment, graceful=False)
        for slot in ("blue", "green"):
            slot_stop(environment=environment, slot=slot)

    cutover = statistics.median(cutovers)
    rollback = statistics.median(rollbacks)
    rows += [
        (f"cutover, switch_to (median of {len(cutovers)})", _ms(cutover)),
        (f"rollback by switch-back (median of {len(rollbacks)})", _ms(rollback)),
        ("baseline: naive stop + start in place", _ms(naive_seconds)),
        ("cutover vs baseline", f"{naive_seconds / cutover:,.0f}x faster"),
        ("rollback vs baseline", f"{naive_seconds / rollback:,.0f}x faster"),
        (
            "failed requests during cutover",
            f"{cutover_result.failed} of {cutover_result.requests} "
            f"({cutover_result.non_2xx} non-2xx, {cutover_result.transport_errors} transport)",
        ),
        (
            "failed requests during rollback",
            f"{rollback_result.failed} of {rollback_result.requests} "
            f"({rollback_result.non_2xx} non-2xx, {rollback_result.transport_errors} transport)",
        ),
        (
            "baseline: failed requests, naive restart",
            f"{naive_result.failed} of {naive_result.requests} "
            f"({naive_result.non_2xx} non-2xx, {naive_result.transport_errors} transport)",
        ),
        (
            "keep-alive connections opened (cutover, rollback)",
            f"{cutover_result.connections_opened}, {rollback_result.connections_opened} "
            f"for {LOAD_THREADS} clients",
        ),
    ]
    _print_rows(rows)
    checks = {
        f"rollback by switch-back < {ROLLBACK_TARGET_SECONDS:g} s": max(rollbacks)
        < ROLLBACK_TARGET_SECONDS,
        "zero failed requests during cutover and rollback": cutover_result.failed
        + rollback_result.failed
        == 0,
        "both releases served": bool(cutover_result.versions[OLD] and cutover_result.versions[NEW]),
        "the baseline harness saw the naive restart fail": naive_result.failed > 0,
    }
    ok = _print_checks(checks)
    pipeline: dict = {}
    if not args.no_pipeline:
        passed, pipeline = _pipeline_in_child()
        ok = passed and ok
    same_stages: dict = {}
    if not args.no_hosts:
        # Like for like with the run across machines: the same stages on one host.
        passed, same_stages = _pipeline_in_child(gates=False)
        ok = passed and ok
    if not args.no_hosts:
        from benchmarks import deploy_hosts

        def failed(result: object) -> str:
            return f"{result.non_2xx} / {result.transport_errors} of {result.requests}"

        def pipeline_figures(figures: dict) -> str:
            if not figures:
                return "broke (see above)"
            without = figures.get("deploy_seconds")
            return (
                f"{figures['status']} in {_ms(figures['total'])}"
                + (f" ({_ms(without)} w/o analysis)" if without is not None else "")
                + f", failed {figures['non_2xx']} / {figures['transport']} of "
                f"{figures['requests']}"
            )

        full = f"same stages: {pipeline_figures(same_stages)}, switch_to {_ms(cutover)}"
        if pipeline:
            full += f"; with quality + security gates: {pipeline_figures(pipeline)}"
        single = {
            "full deploy": full,
            "host killed while serving": (
                f"one host, no second to serve: naive restart in place {_ms(naive_seconds)}, "
                f"failed {failed(naive_result)}"
            ),
            "manual rollback": f"switch_to back {_ms(rollback)}, failed {failed(rollback_result)}",
            "automatic rollback (bad release)": "none (no automatic rollback on one host)",
        }
        undo = same_stages.get("rollback") or {}
        if undo:
            single["manual rollback"] = (
                f"rollback_start {undo['status']} in {_ms(undo['seconds'])}, failed "
                f"{undo['non_2xx']} / {undo['transport']} of {undo['requests']}; "
                + single["manual rollback"]
            )
        print("== deploy across machines (child process, throwaway data dirs)", flush=True)
        hosts = deploy_hosts.run_in_child(repository=Path(settings.BASE_DIR))
        ok = deploy_hosts.print_table(hosts, single) and ok
    return 0 if ok else 1


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}", flush=True)


def _print_checks(checks: dict[str, bool]) -> bool:
    for label, passed in checks.items():
        print(f"  [{'ok' if passed else 'MISSED'}] {label}", flush=True)
    return all(checks.values())


# --- A full pipeline run --------------------------------------------------------------------

PIPELINE_TARGET_SECONDS = 5 * 60
PIPELINE_LOG_LINES = 15
PIPELINE_LOAD_PAUSE = 0.02  # per worker: ~100 requests/s in all, light beside the test suite
PIPELINE_LOAD_MAX_SECONDS = 15 * 60
# The whole child run (quality gate included) is cut off after this.
PIPELINE_CHILD_TIMEOUT = 20 * 60


def _pipeline_in_child(*, gates: bool = True) -> tuple[bool, dict]:
    """Runs the full pipeline in a child process against a throwaway data dir and database;
    returns whether its checks held and its figures (empty when it broke). Without ``gates``
    the quality, security and cleanup stages are off: the stages the run across machines has
    (its old slots stay warm for the manual rollback)."""
    import json
    import tempfile

    from django.conf import settings

    what = "full pipeline run" if gates else "pipeline run without gates and cleanup"
    print(f"== {what} (child process, throwaway data dir and database)", flush=True)
    # Short: HAProxy's admin socket path must fit AF_UNIX's 108 bytes.
    data_dir = tempfile.mkdtemp(prefix="swedify-bench-")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        SWEDIFY_DATA_DIR=data_dir,
        DATABASE_URL=f"sqlite:///{data_dir}/bench.sqlite3",
        DJANGO_SETTINGS_MODULE="swedify.settings",
        SWEDIFY_BENCH_RESULT=f"{data_dir}/result.json",
        SWEDIFY_BENCH_GATES="on" if gates else "off",
    )
    try:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.deploy", "--pipeline-only"],
            cwd=settings.BASE_DIR,
            env=env,
            timeout=PIPELINE_CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  [MISSED] the pipeline run did not end within {PIPELINE_CHILD_TIMEOUT} s")
        return False, {}
    else:
        result = Path(data_dir) / "result.json"
        figures = json.loads(result.read_text()) if result.exists() else {}
    finally:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    return child.returncode == 0, figures


def _has_analysis_stage() -> bool:
    from deployments import pipeline

    return any(stage.key == "analysis" for stage in pipeline.PIPELINE)


def _analysis_override() -> dict:
    from benchmarks.deploy_hosts import ANALYSIS

    return ANALYSIS


def _pipeline_main() -> int:
    """Child side: two releases of HEAD; r1 bootstraps production (no quality gate), r2 is the
    measured run with every stage as defined."""
    _setup_django()
    from django.conf import settings
    from django.core.management import call_command

    from benchmarks.load import LoadGenerator
    from deployments.adapters import Infrastructure, use_infrastructure
    from deployments.pipeline import pipeline_run_create, pipeline_run_execute
    from deployments.proxy import proxy_admin_socket, proxy_stop
    from deployments.services import environment_configure, release_create
    from deployments.slots import slot_stop

    call_command("migrate", verbosity=0, interactive=False)
    sha = subprocess.run(
        ["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    names = ("staging", "production")
    listen = {}
    # Only the slots get the benchmark's key: the quality gate's tests see this environment.
    infrastructure = Infrastructure(slot_env=_slot_env())
    try:
        for name in names:
            listen[name] = _free_port()
            environment_configure(
                name=name,
                blue_port=_free_port(),
                green_port=_free_port(),
                listen_port=listen[name],
                admin_socket=str(proxy_admin_socket(environment=name)),
                actor_name="benchmark",
            )
        # r1 only puts a release live, so r2 is a real blue-green deploy beside a warm slot.
        settings.SWEDIFY_PIPELINE_OVERRIDES = {
            "quality": {"enabled": False},
            "security": {"enabled": False},
            "cleanup": {"enabled": False},
            **(_analysis_override() if _has_analysis_stage() else {}),
        }
        first = release_create(git_sha=sha, notes="benchmark bootstrap", actor_name="benchmark")
        bootstrap = pipeline_run_execute(
            run_id=pipeline_run_create(release=first, actor_name="benchmark", queue=False).pk,
            infrastructure=infrastructure,
        )
        if bootstrap is None or bootstrap.status != "succeeded":
            print(f"  [MISSED] bootstrap run of r1: {getattr(bootstrap, 'error', '?')}")
            return 1
        # The analysis window (5 min by default) would dominate the run: a short one, as
        # across machines.
        settings.SWEDIFY_PIPELINE_OVERRIDES = {
            **(_analysis_override() if _has_analysis_stage() else {}),
            **(
                {}
                if os.environ.get("SWEDIFY_BENCH_GATES") != "off"
                else {
                    "quality": {"enabled": False},
                    "security": {"enabled": False},
                    "cleanup": {"enabled": False},
                }
            ),
        }
        second = release_create(git_sha=sha, notes="benchmark", actor_name="benchmark")
        run = pipeline_run_create(release=second, actor_name="benchmark", queue=False)
        load = LoadGenerator(
            f"http://127.0.0.1:{listen['production']}",
            threads=2,
            pause=PIPELINE_LOAD_PAUSE,
            max_seconds=PIPELINE_LOAD_MAX_SECONDS,
            max_requests=10**6,
        )
        started = time.perf_counter()
        with load, use_infrastructure(infrastructure):
            run = pipeline_run_execute(run_id=run.pk, infrastructure=infrastructure)
        total = time.perf_counter() - started
        rollback_figures: dict = {}
        if os.environ.get("SWEDIFY_BENCH_GATES") == "off" and run.status == "succeeded":
            # The manual rollback as across machines (``rollback_start``), old slot warm.
            from deployments.models import Environment
            from deployments.rollbacks import rollback_start

            rollback_load = LoadGenerator(
                f"http://127.0.0.1:{listen['production']}",
                threads=2,
                pause=PIPELINE_LOAD_PAUSE,
                max_seconds=60,
                max_requests=10**6,
            )
            with rollback_load, use_infrastructure(infrastructure):
                rollback_load.wait_for(second.label, responses=50, timeout=20)
                began = time.perf_counter()
                rollback = rollback_start(
                    environment=Environment.objects.get(name="production"),
                    reason="benchmark: manual rollback",
                    actor_name="benchmark",
                    infrastructure=infrastructure,
                )
                rollback_figures = {
                    "seconds": time.perf_counter() - began,
                    "status": f"{rollback.mode} {rollback.status}",
                }
                rollback_load.wait_for(first.label, responses=50, timeout=20)
            rollback_figures.update(
                requests=rollback_load.result.requests,
                non_2xx=rollback_load.result.non_2xx,
                transport=rollback_load.result.transport_errors,
            )
    finally:
        for name in names:
            proxy_stop(environment=name, graceful=False)
            for slot in ("blue", "green"):
                slot_stop(environment=name, slot=slot)

    rows = []
    for stage in run.stages.order_by("position"):
        seconds = stage.duration_seconds
        took = _ms(seconds) if seconds is not None else "-"
        rows.append((f"{stage.name} ({stage.outcome})", f"{took}  {stage.summary[:70]}"))
    rows += [
        (f"pipeline run #{run.pk} of {second.label}: {run.status}", _ms(total)),
        (
            "failed requests through production's proxy during the run",
            f"{load.result.failed} of {load.result.requests} "
            f"(versions {dict(load.result.versions)})",
        ),
    ]
    _print_rows(rows)
    if os.environ.get("SWEDIFY_BENCH_RESULT"):
        import json

        Path(os.environ["SWEDIFY_BENCH_RESULT"]).write_text(
            json.dumps(
                {
                    "total": total,
                    "status": run.status,
                    "deploy_seconds": getattr(run, "deploy_seconds", None),
                    "rollback": rollback_figures,
                    "requests": load.result.requests,
                    "non_2xx": load.result.non_2xx,
                    "transport": load.result.transport_errors,
                }
            )
        )
    for stage in run.stages.filter(outcome="failed"):
        print(f"  -- {stage.name} failed; the end of its log:")
        print("\n".join(f"     {line}" for line in stage.log.splitlines()[-PIPELINE_LOG_LINES:]))
    return (
        0
        if _print_checks(
            {
                "the pipeline run succeeded": run.status == "succeeded",
                f"deploy < {PIPELINE_TARGET_SECONDS // 60} min": total < PIPELINE_TARGET_SECONDS,
                "zero failed requests during the run": load.result.failed == 0,
            }
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
