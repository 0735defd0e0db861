"""The deploy agent's pieces that need no worker: the release archive and its token, unpacking
on the host, the result backend of the embedded broker, and the control side's guards."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from deployments import slots
from deployments.agent import (
    AgentAnswer,
    AgentError,
    AgentNotAnswering,
    AtomicFilesystemBackend,
    RemoteHost,
    _slot_env,
    agents_call,
    release_offer,
    release_token,
    release_token_valid,
    venv_key,
)
from deployments.slots import SlotError, release_unpack


def head_sha() -> str:
    return subprocess.run(
        ["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def archive_url(git_sha: str) -> str:
    return f"/deploy/releases/{git_sha}.tar.gz"


def test_a_release_token_opens_its_own_commit_only() -> None:
    sha, other = "a" * 40, "b" * 40
    assert release_token_valid(git_sha=sha, token=release_token(git_sha=sha))
    assert not release_token_valid(git_sha=other, token=release_token(git_sha=sha))
    assert not release_token_valid(git_sha=sha, token="")


def test_a_release_token_depends_on_the_secret_key(settings) -> None:
    token = release_token(git_sha="a" * 40)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only"
    assert not release_token_valid(git_sha="a" * 40, token=token)


# Archives this repository's HEAD: needs the git checkout, which a release export is not.
@pytest.mark.integration
def test_the_archive_is_served_with_its_token_and_hashes_to_the_offered_checksum() -> None:
    offer = release_offer(git_sha=head_sha(), control_url="http://control.example:8000")
    assert offer.url == f"http://control.example:8000{archive_url(offer.git_sha)}"
    response = Client().get(archive_url(offer.git_sha), HTTP_AUTHORIZATION=f"Bearer {offer.token}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == offer.sha256
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "swedify/wsgi.py" in tar.getnames()


# Archives this repository's HEAD: needs the git checkout, which a release export is not.
@pytest.mark.integration
def test_a_missing_or_wrong_token_is_refused_before_any_work(monkeypatch) -> None:
    built: list[str] = []

    def release_archive(*, git_sha: str) -> Path:
        built.append(git_sha)
        raise SlotError("not built in this test")

    monkeypatch.setattr("deployments.release_views.release_archive", release_archive)
    sha = head_sha()
    client = Client()
    assert client.get(archive_url(sha)).status_code == 403
    for header in (
        f"Bearer {release_token(git_sha='0' * 40)}",  # another commit's token
        f"Token {release_token(git_sha=sha)}",  # not a bearer token
        "Bearer ",
    ):
        assert client.get(archive_url(sha), HTTP_AUTHORIZATION=header).status_code == 403
    # Only full SHAs: an abbreviation would be a second name for the same token.
    short = sha[:12]
    refused = client.get(
        archive_url(short), HTTP_AUTHORIZATION=f"Bearer {release_token(git_sha=short)}"
    )
    assert refused.status_code == 403
    assert built == []
    # Negative control: the right token gets as far as the archive.
    right = client.get(archive_url(sha), HTTP_AUTHORIZATION=f"Bearer {release_token(git_sha=sha)}")
    assert right.status_code == 404
    assert built == [sha]


def test_a_valid_token_for_a_commit_that_does_not_exist_is_not_found() -> None:
    sha = "0" * 40
    response = Client().get(
        archive_url(sha), HTTP_AUTHORIZATION=f"Bearer {release_token(git_sha=sha)}"
    )
    assert response.status_code == 404


# Archives this repository's HEAD: needs the git checkout, which a release export is not.
@pytest.mark.integration
def test_the_archive_is_read_only_through_get() -> None:
    sha = head_sha()
    header = f"Bearer {release_token(git_sha=sha)}"
    assert Client().post(archive_url(sha), HTTP_AUTHORIZATION=header).status_code == 405


def tar_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_an_unpacked_release_is_kept_and_a_second_unpack_is_a_no_op(settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path / "host"
    archive = tmp_path / "release.tar.gz"
    archive.write_bytes(tar_with({"swedify/wsgi.py": b"application = None\n"}))
    sha = "c" * 40
    first = release_unpack(git_sha=sha, archive=archive)
    assert first == tmp_path / "host" / "releases" / sha
    assert (first / "swedify" / "wsgi.py").read_bytes() == b"application = None\n"
    assert (first / slots.RELEASE_MARKER).read_text().strip() == sha
    archive.unlink()  # a second unpack must not need it
    assert release_unpack(git_sha=sha, archive=archive) == first


def test_unpacking_refuses_an_archive_that_escapes_its_folder(settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path / "host"
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_with({"../../outside.txt": b"x"}))
    with pytest.raises(SlotError, match="cannot unpack"):
        release_unpack(git_sha="d" * 40, archive=archive)
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "host" / "releases" / ("d" * 40)).exists()
    with pytest.raises(SlotError, match="not a full git commit SHA"):
        release_unpack(git_sha="HEAD", archive=archive)


def test_the_file_result_backend_makes_its_folder_and_leaves_only_whole_results(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "broker" / "results"
    from swedify.celery import app

    backend = AtomicFilesystemBackend(url=f"file://{folder}", app=app)
    backend.set(b"celery-task-meta-1", b'{"status": "SUCCESS"}')
    assert backend.get(b"celery-task-meta-1") == b'{"status": "SUCCESS"}'
    assert sorted(path.name for path in folder.iterdir()) == ["celery-task-meta-1"]


def test_a_virtualenv_is_shared_by_releases_with_the_same_requirements(tmp_path: Path) -> None:
    one, two, three = (tmp_path / name for name in ("one", "two", "three"))
    for folder, requirements in ((one, "Django==5.2\n"), (two, "Django==5.2\n"), (three, "x\n")):
        folder.mkdir()
        (folder / "requirements.txt").write_text(requirements)
    assert venv_key(source_dir=one, seed=False) == venv_key(source_dir=two, seed=False)
    assert venv_key(source_dir=one, seed=False) != venv_key(source_dir=three, seed=False)
    assert venv_key(source_dir=one, seed=False) != venv_key(source_dir=one, seed=True)


def test_a_slot_accepts_requests_addressed_to_its_host() -> None:
    env = _slot_env(host="10.0.0.12", env={"ALLOWED_HOSTS": "swedify.example"})
    assert env["ALLOWED_HOSTS"] == "swedify.example,10.0.0.12"
    assert _slot_env(host="10.0.0.12", env={"ALLOWED_HOSTS": "10.0.0.12"}) == {
        "ALLOWED_HOSTS": "10.0.0.12"
    }


def test_the_control_side_refuses_what_it_cannot_send() -> None:
    with pytest.raises(AgentError, match="not a host address"):
        RemoteHost("10.0.0.1 ; rm")
    with pytest.raises(ValueError, match="unknown agent action"):
        RemoteHost("10.0.0.1").send("reboot")
    with pytest.raises(ValueError, match="listed twice"):
        agents_call(hosts=["10.0.0.1", "10.0.0.1"], action="slot_status")


def test_a_release_that_is_not_a_commit_is_a_failed_answer_not_a_send() -> None:
    answer = RemoteHost("10.0.0.1").call(
        "slot_start", environment="staging", slot="blue", port=8011, version="1",
        git_sha="not-a-sha", timeout=1,
    )  # fmt: skip
    assert (answer.ok, answer.answered) == (False, False)
    assert "not a git commit SHA" in answer.error


def test_an_answer_raises_what_went_wrong() -> None:
    silent = AgentAnswer("h", "slot_status", ok=False, answered=False, error="no answer")
    failed = AgentAnswer("h", "slot_status", ok=False, answered=True, error="refused")
    good = AgentAnswer("h", "slot_status", ok=True, answered=True, result={"running": False})
    with pytest.raises(AgentNotAnswering, match="no answer"):
        silent.raise_for_error()
    with pytest.raises(AgentError, match="refused") as raised:
        failed.raise_for_error()
    assert not isinstance(raised.value, AgentNotAnswering)
    assert good.raise_for_error() == {"running": False}
    assert good.as_dict()["result"] == {"running": False}


def test_an_agent_gives_up_on_a_start_before_its_caller_does() -> None:
    from deployments import agent

    agent_budget = (
        agent.DOWNLOAD_TIMEOUT_SECONDS
        + agent.VENV_CREATE_TIMEOUT_SECONDS
        + agent.PIP_INSTALL_TIMEOUT_SECONDS
        + slots.START_TIMEOUT
    )
    assert agent_budget < agent.START_DEADLINE_SECONDS
