from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_it_answers_ok_with_the_version(client: Client, settings) -> None:
    settings.SWEDIFY_VERSION = "9.9.9"
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "9.9.9"}
    assert "no-cache" in response["Cache-Control"]


def test_it_refuses_other_methods(client: Client) -> None:
    assert client.post("/health").status_code == 405
