"""Helpers shared by the deployments management commands."""

from __future__ import annotations

import getpass

from django.core.management.base import CommandError

from deployments.models import Release


def release_by_reference(reference: str) -> Release:
    """``r3``, ``3`` or a git SHA (prefix of at least 7 characters) → the release."""
    text = reference.strip().lower()
    number = text[1:] if text.startswith("r") else text
    if number.isdigit():
        release = Release.objects.filter(version=int(number)).first()
        if release is None:
            raise CommandError(f"there is no release {reference}")
        return release
    if len(text) >= 7 and all(c in "0123456789abcdef" for c in text):
        matches = list(Release.objects.filter(git_sha__startswith=text).order_by("-version")[:2])
        if not matches:
            raise CommandError(f"no release has git SHA {reference}")
        return matches[0]
    raise CommandError(f"{reference!r} is neither a release (r3, 3) nor a git SHA")


def operator_name() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
