"""Fixtures shared by the deployments tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployments.adapters import use_infrastructure
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments


@pytest.fixture
def infra(settings) -> Iterator[FakeInfrastructure]:
    """Fake slots and proxies for staging and production, and a pipeline without delays."""
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        yield fake
