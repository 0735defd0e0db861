"""Deploy benchmark across machines: three app hosts and two HAProxies on loopback addresses.

The app hosts are 127.0.0.2, 127.0.0.3 and 127.0.0.4, each with a deploy agent of its own (a
Celery worker consuming ``deploy.<host>``, with its own data folder); the proxies listen on
127.0.0.5 and 127.0.0.6. Everything runs in a child process with a throwaway data folder,
SQLite database and filesystem broker (never the operator's database, Redis or broker); the
control side serves the release archives from a WSGI server on 127.0.0.1 in that child.

Steps, each under bounded keep-alive load through both proxies:

1. a full deploy of HEAD (the real pipeline; quality and security gates off, as they are the
   same work with one host or three and would take the run past its budget);
2. a host killed while serving (SIGKILL of the live slot's gunicorn on 127.0.0.2);
3. a manual rollback (``rollback_start``: every proxy switched back to the warm old slots);
4. a bad release (a commit on no branch whose app answers 500 to every second proxied
   request) deployed through the pipeline, rolled back by the ``analysis`` stage when the
   pipeline has one (a 10 s window); without it that step is reported as not available.

The child writes its figures as JSON; ``benchmarks.deploy`` prints them beside today's
single-host figures of the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PROXY_ADDRESSES = ("127.0.0.5", "127.0.0.6")
LOAD_THREADS = 2  # per proxy
LOAD_PAUSE = 0.01
LOAD_MAX_SECONDS = 240.0
AGENT_READY_SECONDS = 90.0
AGENT_STOP_SECONDS = 15.0
CHILD_TIMEOUT_SECONDS = 10 * 60
BEFORE_FAULT = 200
AFTER_FAULT = 600
DOWN_TIMEOUT = 15.0
ANALYSIS_WINDOW_SECONDS = 10
ANALYSIS_INTERVAL_SECONDS = 1
ROUTE_POLL_SECONDS = 0.02
# After the bad run ends, how long to wait for every proxy to route the old slot again.
ROLLBACK_WATCH_SECONDS = 60.0
SECRET_KEY = "deploy-hosts-benchmark-key-not-the-development-one"  # noqa: S105 - throwaway
PIPELINE = {
    "quality": {"enabled": False},
    "security": {"enabled": False},
    "cleanup": {"enabled": False},
    "staging_health": {"delay_seconds": 1},
    "production_health": {"delay_seconds": 1},
}
ANALYSIS = {
    "analysis": {
        "params": {
            "window_seconds": ANALYSIS_WINDOW_SECONDS,
            "interval_seconds": ANALYSIS_INTERVAL_SECONDS,
        }
    }
}

# The bad release's patch: every second request that came through a proxy (HAProxy adds
# X-Forwarded-For) answers 500; the health gates and HAProxy's checks, which ask the slot
# directly, still see a healthy release, so the bad release really goes live.
BAD_WSGI_SUFFIX = """

# Benchmark only (benchmarks/deploy_hosts.py): a bad release, 500 to every second request.
import itertools as _bench_itertools

_bench_counter = _bench_itertools.count()
_bench_good_application = application


def application(environ, start_response):
    if environ.get("HTTP_X_FORWARDED_FOR") and next(_bench_counter) % 2:
        body = b"benchmark: bad release"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]
    return _bench_good_application(environ, start_response)
"""


@dataclass
class Step:
    name: str
    available: bool = True
    note: str = ""
    requests: int = 0
    non_2xx: int = 0
    transport_errors: int = 0
    switch_seconds: float | None = None
    bad_to_old_seconds: float | None = None
    total_seconds: float | None = None
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- Parent side ----------------------------------------------------------------------------


def run_in_child(*, repository: Path) -> dict[str, Any]:
    """Runs the steps in a child process; returns its figures (``{"error": ...}`` on failure)."""
    data_dir = tempfile.mkdtemp(prefix="sw-bh-")  # short: AF_UNIX socket paths
    out = Path(data_dir) / "result.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env.update(
        SWEDIFY_DATA_DIR=data_dir,
        DATABASE_URL=f"sqlite:///{data_dir}/control.sqlite3",
        DJANGO_SETTINGS_MODULE="swedify.settings",
        SECRET_KEY=SECRET_KEY,
        DEBUG="false",
        ALLOWED_HOSTS=",".join(["127.0.0.1", "localhost", *HOSTS, *PROXY_ADDRESSES]),
    )
    try:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.deploy_hosts", str(out)],
            cwd=repository,
            env=env,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        if not out.exists():
            return {"error": "the multi-host child wrote no result (see its output above)"}
        return json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        return {"error": f"the multi-host child did not end within {CHILD_TIMEOUT_SECONDS} s"}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


DEPLOY_TARGET_SECONDS = 5 * 60
ROLLBACK_TARGET_SECONDS = 60.0


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _failed(step: dict[str, Any]) -> str:
    return f"{step['non_2xx']} / {step['transport_errors']} of {step['requests']}"


def _verdict(step: dict[str, Any]) -> tuple[str, bool]:
    """The step's target and whether it held."""
    name = step["name"]
    if not step["available"]:
        return "rollback < 1 min", True
    if name == "full deploy":
        held = (
            step["status"] == "succeeded"
            and (step["total_seconds"] or 1e9) < DEPLOY_TARGET_SECONDS
            and step["non_2xx"] + step["transport_errors"] == 0
        )
        return "deploy < 5 min, 0 failed", held
    if name == "host killed while serving":
        # Only an answer cut off mid-write cannot be retried: at most one per connection.
        cut_off = LOAD_THREADS * len(PROXY_ADDRESSES)
        held = step["non_2xx"] == 0 and step["transport_errors"] <= cut_off
        held = held and step["status"] == "taken out"
        return f"0 non-2xx, <= {cut_off} cut off", held
    if name == "manual rollback":
        held = (step["total_seconds"] or 1e9) < ROLLBACK_TARGET_SECONDS
        held = held and step["non_2xx"] + step["transport_errors"] == 0
        return "rollback < 1 min, 0 failed", held
    held = step["bad_to_old_seconds"] is not None
    held = held and step["bad_to_old_seconds"] < ROLLBACK_TARGET_SECONDS
    return "rollback < 1 min", held


def print_table(result: dict[str, Any], single: dict[str, str]) -> bool:
    """Prints one row per step beside today's single-host figure (``single``, by step name);
    returns whether every target held."""
    print(
        f"== across machines: hosts {', '.join(HOSTS)} (an agent each), proxies "
        f"{', '.join(PROXY_ADDRESSES)}; failed = non-2xx / transport errors",
        flush=True,
    )
    header = (
        "step", "failed", "switch all proxies", "bad -> old", "total", "target", "",
        "single host today",
    )  # fmt: skip
    rows = [header]
    ok = True
    for step in result.get("steps", []):
        target, held = _verdict(step)
        ok = ok and held
        if not step["available"]:
            rows.append((step["name"], step["note"], "", "", "", target, "-",
                         single.get(step["name"], "")))  # fmt: skip
            continue
        total = _took(step["total_seconds"])
        if step["name"] == "host killed while serving":
            total = f"out after {_took(step['extra'].get('taken_out_seconds'))}"
        elif step["extra"].get("deploy_seconds") is not None:
            total += f" ({_took(step['extra']['deploy_seconds'])} w/o analysis)"
        rows.append(
            (
                step["name"],
                _failed(step),
                _took(step["switch_seconds"]),
                _took(step["bad_to_old_seconds"]),
                total,
                target,
                "PASS" if held else "FAIL",
                single.get(step["name"], ""),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  " + "  ".join(f"{cell!s:<{widths[i]}}" for i, cell in enumerate(row)).rstrip())
    for step in result.get("steps", []):
        if step["extra"].get("analysis"):
            print(f"  analysis: {'; '.join(step['extra']['analysis'])}")
        if step["extra"].get("stages"):
            stages = ", ".join(f"{k} {_took(v)}" for k, v in step["extra"]["stages"].items() if v)
            print(f"  full deploy stages: {stages}")
    if "error" in result:
        print(f"  [MISSED] the run across machines broke: {result['error']}")
        ok = False
    elif len(result.get("steps", [])) < 4:
        ok = False
    print(f"  whole run across machines: {_took(result.get('seconds'))}", flush=True)
    return ok


# --- Child side -----------------------------------------------------------------------------


class Agents:
    """One deploy agent (Celery worker on ``deploy.<host>``) per host, own data folder each."""

    def __init__(self, root: Path, database_url: str, broker_dir: Path) -> None:
        self.root, self.database_url, self.broker_dir = root, database_url, broker_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def data_dir(self, host: str) -> Path:
        return self.root / f"agent-{host}"

    def log(self, host: str) -> Path:
        return self.data_dir(host) / "agent.log"

    def start(self, repository: Path) -> None:
        for host in HOSTS:
            data_dir = self.data_dir(host)
            data_dir.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "DATABASE_URL": self.database_url,
                "SWEDIFY_AGENT_HOST": host,
                "SWEDIFY_DATA_DIR": str(data_dir),
                "SWEDIFY_BROKER_DIR": str(self.broker_dir),
                "SWEDIFY_AGENT_VENV_SEED": "true",
                "SWEDIFY_SANDBOX": "true",
            }
            for name in ("SWEDIFY_VERSION", "PYTHONPATH"):
                env.pop(name, None)
            with self.log(host).open("w") as output:
                self.processes[host] = subprocess.Popen(
                    [
                        sys.executable, "-m", "celery", "-A", "swedify", "worker",
                        "-Q", f"deploy.{host}", "-n", f"agent-{host}@%h", "--concurrency", "1",
                        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
                    ],
                    cwd=repository, env=env, stdout=output, stderr=subprocess.STDOUT,
                )  # fmt: skip
        deadline = time.monotonic() + AGENT_READY_SECONDS
        for host, process in self.processes.items():
            while "ready." not in self.log(host).read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"agent {host} not ready:\n{self.log(host).read_text()}")
                time.sleep(0.2)

    def stop(self) -> None:
        from django.test import override_settings

        from deployments import slots

        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=AGENT_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # Slots outlive their agent by design: stop every slot the agents started.
        for host in HOSTS:
            with override_settings(DATA_DIR=self.data_dir(host)):
                for pid_file in (self.data_dir(host) / "slots").glob("*.pid"):
                    environment, _, slot = pid_file.stem.rpartition("-")
                    with contextlib.suppress(Exception):
                        slots.slot_stop(environment=environment, slot=slot)

    def slot_pid(self, host: str, *, environment: str, slot: str) -> int | None:
        from django.test import override_settings

        from deployments import slots

        with override_settings(DATA_DIR=self.data_dir(host)):
            running = slots.slot_status(environment=environment, slot=slot)
        return running.pid if running is not None else None


class ControlServer:
    """The control side's HTTP (release archives for the agents) on 127.0.0.1."""

    def __init__(self) -> None:
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        from django.core.wsgi import get_wsgi_application

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server = make_server(
            "127.0.0.1", 0, get_wsgi_application(), server_class=Server, handler_class=QuietHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RouteWatch:
    """Polls every proxy's routed slot; records when all route one slot."""

    def __init__(self, proxies: list[Any]) -> None:
        self.proxies = proxies
        self.events: list[tuple[float, tuple[str | None, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last = None
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            routes = []
            for proxy in self.proxies:
                try:
                    routes.append(proxy.routed_slot())
                except Exception:  # noqa: BLE001 - a proxy not started yet routes nothing
                    routes.append(None)
            state = tuple(routes)
            if state != last:
                self.events.append((time.monotonic(), state))
                last = state
            time.sleep(ROUTE_POLL_SECONDS)

    def first_all(self, slot: str, *, after: float = 0.0) -> float | None:
        for moment, state in self.events:
            if moment >= after and all(route == slot for route in state):
                return moment
        return None


def git_head(repository: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repository), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def bad_commit(repository: Path, head: str) -> str:
    """A commit of HEAD plus the bad patch, on no branch: written with a temporary index into
    the object store (so ``git archive`` finds it), no ref and no working tree touched."""

    def git(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            input=stdin,
        ).stdout.strip()

    wsgi = git("show", f"{head}:swedify/wsgi.py") + "\n" + BAD_WSGI_SUFFIX
    with tempfile.TemporaryDirectory(prefix="sw-bh-index-") as folder:
        env = {
            **os.environ,
            "GIT_INDEX_FILE": str(Path(folder) / "index"),
            "GIT_AUTHOR_NAME": "benchmark",
            "GIT_AUTHOR_EMAIL": "benchmark@127.0.0.1",
            "GIT_COMMITTER_NAME": "benchmark",
            "GIT_COMMITTER_EMAIL": "benchmark@127.0.0.1",
        }
        git("read-tree", head, env=env)
        blob = git("hash-object", "-w", "--stdin", stdin=wsgi)
        git("update-index", "--cacheinfo", f"100644,{blob},swedify/wsgi.py", env=env)
        tree = git("write-tree", env=env)
        return git(
            "commit-tree", tree, "-p", head, "-m", "benchmark: bad release (500 to every second)",
            env=env,
        )  # fmt: skip


def loads(urls: list[str]) -> list[Any]:
    from benchmarks.load import LoadGenerator

    return [
        LoadGenerator(
            url,
            threads=LOAD_THREADS,
            pause=LOAD_PAUSE,
            max_seconds=LOAD_MAX_SECONDS,
            max_requests=10**6,
        )
        for url in urls
    ]


def count(step: Step, generators: list[Any]) -> None:
    for generator in generators:
        result = generator.result
        step.requests += result.requests
        step.non_2xx += result.non_2xx
        step.transport_errors += result.transport_errors
        step.extra.setdefault("versions", {})
        for version, answers in result.versions.items():
            step.extra["versions"][version] = step.extra["versions"].get(version, 0) + answers
        step.extra.setdefault("errors", []).extend(result.error_samples[:2])


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def switch_seconds_of(run: Any) -> float | None:
    """The cutover stage's own measure of switching every proxy ("traffic on green (0.012 s)")."""
    stage = run.stages.filter(key="cutover").first()
    if stage is None:
        return None
    found = re.search(r"\(([\d.]+) s\)", stage.summary or "")
    return float(found.group(1)) if found else stage.duration_seconds


def child_main(out: Path) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from deployments import pipeline as pipeline_module
    from deployments.adapters import Infrastructure, use_infrastructure
    from deployments.models import Environment
    from deployments.pipeline import pipeline_run_create, pipeline_run_execute
    from deployments.proxy import Proxy, proxy_admin_socket, proxy_stop
    from deployments.rollbacks import rollback_start
    from deployments.services import (
        environment_configure,
        environment_host_add,
        environment_proxy_add,
        release_create,
    )
    from deployments.slots import slot_stop

    repository = Path(settings.BASE_DIR)
    data_dir = Path(settings.DATA_DIR)
    call_command("migrate", verbosity=0, interactive=False)
    has_analysis = any(stage.key == "analysis" for stage in pipeline_module.PIPELINE)
    overrides = {**PIPELINE, **(ANALYSIS if has_analysis else {})}
    head = git_head(repository)
    slot_env = {"SECRET_KEY": SECRET_KEY, "ALLOWED_HOSTS": ",".join(settings.ALLOWED_HOSTS)}
    infrastructure = Infrastructure(slot_env=slot_env)
    agents = Agents(data_dir / "hosts", os.environ["DATABASE_URL"], Path(settings.BROKER_DIR))
    control: ControlServer | None = None
    steps: list[Step] = []
    proxy_names = ["p1", "p2"]
    result: dict[str, Any] = {"hosts": list(HOSTS), "proxies": list(PROXY_ADDRESSES)}
    started_all = time.perf_counter()
    try:
        control = ControlServer()
        settings.SWEDIFY_CONTROL_URL = control.url
        settings.SWEDIFY_PIPELINE_OVERRIDES = overrides
        agents.start(repository)
        staging_port = free_port()
        environment_configure(
            name="staging",
            blue_port=free_port(),
            green_port=free_port(),
            listen_port=staging_port,
            admin_socket=str(proxy_admin_socket(environment="staging")),
            actor_name="benchmark",
        )
        blue, green = free_port(), free_port()
        production = environment_configure(
            name="production", blue_port=blue, green_port=green, actor_name="benchmark"
        )
        for host in HOSTS:
            environment_host_add(
                environment=production, address=host, blue_port=blue, green_port=green
            )
        urls = []
        for name, address in zip(proxy_names, PROXY_ADDRESSES, strict=True):
            port = free_port()
            environment_proxy_add(
                environment=production, name=name, address=address, listen_port=port
            )
            urls.append(f"http://{address}:{port}")
        proxies = [Proxy(admin_socket=proxy_admin_socket(environment=n)) for n in proxy_names]

        def deploy(sha: str, notes: str) -> tuple[Any, Any, float]:
            release = release_create(git_sha=sha, notes=notes, actor_name="benchmark")
            run = pipeline_run_create(release=release, actor_name="benchmark", queue=False)
            began = time.perf_counter()
            with use_infrastructure(infrastructure):
                run = pipeline_run_execute(run_id=run.pk, infrastructure=infrastructure)
            return release, run, time.perf_counter() - began

        # r1 only puts a release live on every host behind both proxies (the proxies start).
        _, bootstrap, seconds = deploy(head, "benchmark bootstrap")
        result["bootstrap_seconds"] = seconds
        if bootstrap is None or bootstrap.status != "succeeded":
            raise RuntimeError(f"bootstrap run: {getattr(bootstrap, 'error', '?')}")

        # 1. A full deploy under load through both proxies.
        step = Step("full deploy")
        generators = loads(urls)
        with contextlib.ExitStack() as exits:
            for generator in generators:
                exits.enter_context(generator)
            for generator in generators:
                generator.wait_for("r1", responses=50, timeout=20)
            _, run, seconds = deploy(head, "benchmark")
            for generator in generators:
                generator.wait_for("r2", responses=50, timeout=20)
        count(step, generators)
        step.total_seconds, step.status = seconds, run.status
        step.switch_seconds = switch_seconds_of(run)
        # Without the analysis window (PipelineRun.deploy_seconds where the model has it).
        step.extra["deploy_seconds"] = getattr(run, "deploy_seconds", None)
        step.extra["stages"] = {s.name: s.duration_seconds for s in run.stages.order_by("position")}
        steps.append(step)
        if run.status != "succeeded":
            raise RuntimeError(f"deploy of r2: {run.error}")

        # 2. A host killed while serving: SIGKILL of 127.0.0.2's live slot (gunicorn master
        # and workers); the proxies' checks take it out, retries replay what it dropped.
        step = Step("host killed while serving")
        live = Environment.objects.get(name="production").live_slot
        generators = loads(urls)
        with contextlib.ExitStack() as exits:
            for generator in generators:
                exits.enter_context(generator)
            for generator in generators:
                generator.wait_for("r2", responses=BEFORE_FAULT, timeout=20)
            pid = agents.slot_pid(HOSTS[0], environment="production", slot=live)
            if pid is None:
                raise RuntimeError(f"no {live} slot running on {HOSTS[0]}")
            killed = time.perf_counter()
            os.killpg(pid, signal.SIGKILL)
            server = f"{live}-1"
            down = None
            deadline = time.monotonic() + DOWN_TIMEOUT
            while time.monotonic() < deadline and down is None:
                if all(not p.servers()[server].up for p in proxies):
                    down = time.perf_counter() - killed
                time.sleep(0.05)
            for generator in generators:
                generator.wait_for("r2", responses=AFTER_FAULT, timeout=15)
        count(step, generators)
        step.status = "taken out" if down is not None else "never taken out"
        step.extra["taken_out_seconds"] = down
        steps.append(step)

        # 3. A manual rollback: every proxy back to the warm old slots (r1).
        step = Step("manual rollback")
        generators = loads(urls)
        with contextlib.ExitStack() as exits:
            for generator in generators:
                exits.enter_context(generator)
            for generator in generators:
                generator.wait_for("r2", responses=50, timeout=20)
            began = time.perf_counter()
            with use_infrastructure(infrastructure):
                rollback = rollback_start(
                    environment=Environment.objects.get(name="production"),
                    reason="benchmark: manual rollback",
                    actor_name="benchmark",
                    infrastructure=infrastructure,
                )
            step.total_seconds = time.perf_counter() - began
            for generator in generators:
                generator.wait_for("r1", responses=50, timeout=20)
        count(step, generators)
        step.switch_seconds = step.total_seconds
        step.status = f"{rollback.mode} {rollback.status}"
        steps.append(step)

        # 4. The bad release, rolled back by the analysis stage.
        step = Step("automatic rollback (bad release)")
        if not has_analysis:
            step.available = False
            step.note = "not available (no analysis stage)"
        else:
            bad = bad_commit(repository, head)
            old_slot = Environment.objects.get(name="production").live_slot
            generators = loads(urls)
            with contextlib.ExitStack() as exits, RouteWatch(proxies) as watch:
                for generator in generators:
                    exits.enter_context(generator)
                for generator in generators:
                    generator.wait_for("r1", responses=50, timeout=20)
                _, run, seconds = deploy(bad, "benchmark: bad release")
                new_slot = "green" if old_slot == "blue" else "blue"
                bad_live = watch.first_all(new_slot)
                deadline = time.monotonic() + ROLLBACK_WATCH_SECONDS
                back = None
                while bad_live is not None and time.monotonic() < deadline:
                    back = watch.first_all(old_slot, after=bad_live)
                    if back is not None:
                        break
                    time.sleep(0.1)
                for generator in generators:
                    generator.wait_for("r1", responses=50, timeout=20)
            count(step, generators)
            step.total_seconds, step.status = seconds, run.status
            step.switch_seconds = switch_seconds_of(run)
            if bad_live is not None and back is not None:
                step.bad_to_old_seconds = back - bad_live
            step.extra["analysis"] = [s.summary for s in run.stages.filter(kind="analysis")]
            step.extra["bad_sha"] = bad
            step.extra["bad_live_seen"] = bad_live is not None
        steps.append(step)
    except Exception as error:  # noqa: BLE001 - reported with whatever was measured
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        for name in [*proxy_names, "staging"]:
            with contextlib.suppress(Exception):
                proxy_stop(environment=name, graceful=False)
        for slot in ("blue", "green"):
            with contextlib.suppress(Exception):
                slot_stop(environment="staging", slot=slot)
        agents.stop()
        if control is not None:
            control.stop()
        result["seconds"] = time.perf_counter() - started_all
        result["steps"] = [asdict(step) for step in steps]
        out.write_text(json.dumps(result, indent=2, default=str))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(child_main(Path(sys.argv[1])))
