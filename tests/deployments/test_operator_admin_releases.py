"""The admin is the whole console for releases: create one from a commit (or the current
one), with a hint on the empty list, and deploy it with a visible button."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from deployments.models import PipelineRun, Release
from deployments.services import release_create
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


@pytest.fixture
def repository(tmp_path: Path, settings) -> str:
    """A git repository of one commit standing in for the project's own checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "README.md").write_text("release\n")
    git("add", "README.md")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "First cut")
    settings.BASE_DIR = tmp_path
    return git("rev-parse", "HEAD")


def test_the_empty_release_list_says_how_to_make_the_first_release(
    staff: Client, repository: str
) -> None:
    page = staff.get("/admin/deployments/release/").content.decode()

    assert "No releases yet" in page
    assert f"{repository[:7]} First cut" in page  # the current commit it would record
    assert 'href="/admin/deployments/release/add/"' in page
    assert "manage.py release_create" in page


def test_a_release_is_created_from_the_current_commit_and_its_page_offers_deploy(
    staff: Client, repository: str
) -> None:
    form = staff.get("/admin/deployments/release/add/").content.decode()
    assert 'value="HEAD"' in form

    response = staff.post(
        "/admin/deployments/release/add/",
        {"commit": "HEAD", "notes": "first", "not_rollback_safe": ""},
    )

    release = Release.objects.get()
    assert (release.label, release.git_sha, release.notes) == ("r1", repository, "first")
    assert release.created_by_name == "admin"
    assert response["Location"] == f"/admin/deployments/release/{release.pk}/change/"
    page = staff.get(response["Location"]).content.decode()
    assert "Release r1 = " in page
    assert 'id="deploy-release"' in page
    assert "Deploy r1…" in page


def test_a_release_can_be_marked_not_rollback_safe_with_its_reason(
    staff: Client, repository: str
) -> None:
    staff.post(
        "/admin/deployments/release/add/",
        {"commit": repository[:10], "notes": "", "not_rollback_safe": "drops a column"},
    )

    release = Release.objects.get()
    assert (release.rollback_safe, release.rollback_unsafe_reason) == (False, "drops a column")


@pytest.mark.parametrize("commit", ["no-such-branch", "--output=/tmp/x", "two words"])
def test_a_commit_that_is_not_one_is_a_clear_error_not_a_500(
    staff: Client, repository: str, commit: str
) -> None:
    response = staff.post(
        "/admin/deployments/release/add/", {"commit": commit, "notes": "", "not_rollback_safe": ""}
    )

    # The form comes back with the reason beside the field.
    assert response.status_code == 200
    page = response.content.decode()
    assert "errorlist" in page
    assert "git rev-parse" in page or "is not a commit, branch or tag name" in page
    assert not Release.objects.exists()


def test_the_deploy_button_confirms_then_queues_a_run_and_opens_its_page(
    staff: Client, infra: FakeInfrastructure, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from deployments import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.pipeline_run_task, "delay", queued.append)
    release = release_create(git_sha="c" * 40, notes="the fix")
    listing = staff.get("/admin/deployments/release/").content.decode()
    assert f'href="/admin/deployments/release/{release.pk}/deploy/"' in listing

    confirm = staff.get(f"/admin/deployments/release/{release.pk}/deploy/").content.decode()
    assert "Deploy r1" in confirm
    assert "production serves now" in confirm
    assert "Quality checks → Security scan" in confirm
    # The test settings keep the development secret with DEBUG off: the page warns of it.
    assert "SECRET_KEY is the development key while DEBUG is off" in confirm
    assert not PipelineRun.objects.exists()  # looking is not deploying

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/admin/deployments/release/{release.pk}/deploy/")

    run = PipelineRun.objects.get(release=release)
    assert response["Location"] == f"/admin/deployments/pipelinerun/{run.pk}/change/"
    assert queued == [run.pk]
    assert f"Run #{run.pk} of r1 queued." in staff.get(response["Location"]).content.decode()


def test_deploying_needs_the_permission_to_start_runs(
    client: Client, django_user_model, infra: FakeInfrastructure
) -> None:
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_release"))
    client.force_login(viewer)
    release = release_create(git_sha="c" * 40)

    assert client.get(f"/admin/deployments/release/{release.pk}/deploy/").status_code == 403
    assert client.post(f"/admin/deployments/release/{release.pk}/deploy/").status_code == 403
    assert not PipelineRun.objects.exists()
    page = client.get(f"/admin/deployments/release/{release.pk}/change/").content.decode()
    assert 'id="deploy-release"' not in page
