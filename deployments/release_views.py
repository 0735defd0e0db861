"""The release archive app hosts' deploy agents download (``deployments.agent``).

``GET /deploy/releases/<sha>.tar.gz`` with ``Authorization: Bearer <token>``, the token being
``deployments.agent.release_token`` of that commit. The token is checked before anything else
(no git work, no file access for a stranger); the archive is the one the control side built
and whose sha256 it sent to the agent.
"""

from __future__ import annotations

import re

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET

from deployments.agent import release_token_valid
from deployments.slots import SlotError, release_archive

_FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@require_GET
def release_archive_download(request: HttpRequest, git_sha: str) -> HttpResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not (
        _FULL_SHA_RE.match(git_sha)
        and scheme == "Bearer"
        and release_token_valid(git_sha=git_sha, token=token.strip())
    ):
        return JsonResponse({"error": "Not a valid release token"}, status=403)
    try:
        archive = release_archive(git_sha=git_sha)
    except SlotError:
        return JsonResponse({"error": "No such release"}, status=404)
    response = FileResponse(archive.open("rb"), content_type="application/gzip")
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("<str:git_sha>.tar.gz", release_archive_download, name="release-archive"),
]
