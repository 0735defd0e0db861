"""Failed admin sign-ins are throttled per address and per account (django-axes, counted in
the database so the throttle holds while the cache is down), and passwords must be strong."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from tests.swedify.test_configuration_errors import unused_port

PASSWORD = "correct horse battery staple"
LIMIT = 5


@pytest.fixture
def operator(db: Any, settings: Any) -> Any:
    # Each attempt hashes a password; the production hasher would make this file take minutes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return get_user_model().objects.create_superuser("operator", "op@example.org", PASSWORD)


def sign_in(
    username: str, password: str, *, address: str = "203.0.113.7", forwarded_for: str = ""
) -> int:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}
    response = Client(REMOTE_ADDR=address, **headers).post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return response.status_code


def fail(
    times: int, *, username: str = "operator", address: str = "203.0.113.7", forwarded_for: str = ""
) -> None:
    for _ in range(times):
        # 200: the form again, with an error; 429 from the failure that reaches the limit.
        status = sign_in(username, "wrong password", address=address, forwarded_for=forwarded_for)
        assert status in (200, 429)


def test_an_operator_signs_in_with_the_right_password(operator: Any) -> None:
    assert sign_in("operator", PASSWORD) == 302


def test_a_few_failures_do_not_lock_anyone_out(operator: Any) -> None:
    for _ in range(LIMIT - 1):
        assert sign_in("operator", "wrong password") == 200
    assert sign_in("operator", PASSWORD) == 302


def test_an_address_that_keeps_failing_is_locked_out_even_with_the_right_password(
    operator: Any,
) -> None:
    fail(LIMIT)
    assert sign_in("operator", PASSWORD) == 429


def test_an_address_is_locked_out_whichever_accounts_it_guesses(operator: Any) -> None:
    for number in range(LIMIT):
        fail(1, username=f"guess{number}")
    assert sign_in("operator", PASSWORD) == 429
    # Another address is not affected by this one's lock.
    assert sign_in("operator", PASSWORD, address="198.51.100.9") == 302


def test_an_account_is_locked_out_whichever_addresses_guess_it(operator: Any) -> None:
    for number in range(LIMIT):
        fail(1, address=f"192.0.2.{number + 1}")
    assert sign_in("operator", PASSWORD, address="198.51.100.9") == 429
    # Another account from a fresh address is not affected by this account's lock.
    get_user_model().objects.create_superuser("second", "second@example.org", PASSWORD)
    assert sign_in("second", PASSWORD, address="198.51.100.10") == 302


def test_behind_our_proxy_each_client_address_is_locked_out_on_its_own(operator: Any) -> None:
    proxy = "127.0.0.1"  # every request through HAProxy comes from loopback
    for number in range(LIMIT):
        fail(1, username=f"guess{number}", address=proxy, forwarded_for="203.0.113.7")
    assert sign_in("operator", PASSWORD, address=proxy, forwarded_for="203.0.113.7") == 429
    # Another client behind the same HAProxy still signs in.
    assert sign_in("operator", PASSWORD, address=proxy, forwarded_for="198.51.100.9") == 302


def test_a_client_cannot_escape_its_lock_with_a_forwarded_for_header_of_its_own(
    operator: Any,
) -> None:
    for number in range(LIMIT):
        fail(1, username=f"guess{number}", forwarded_for=f"192.0.2.{number + 1}")
    assert sign_in("operator", PASSWORD, forwarded_for="198.51.100.9") == 429


@pytest.fixture
def cache_down(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_port()}/0",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }


def test_the_throttle_holds_while_the_cache_is_down(operator: Any, cache_down: None) -> None:
    fail(LIMIT)
    assert sign_in("operator", PASSWORD) == 429


def test_a_throttle_kept_in_the_cache_would_break_admin_sign_in_while_the_cache_is_down(
    operator: Any, cache_down: None, settings: Any
) -> None:
    # The negative control of the test above: why the failures are counted in the database.
    settings.AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
    with pytest.raises(redis.exceptions.ConnectionError):
        sign_in("operator", "wrong password")


@pytest.mark.parametrize("weak", ["short1!", "password1234", "12345678901234", "operator-op"])
def test_weak_passwords_are_refused(operator: Any, weak: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(weak, user=operator)


def test_a_long_uncommon_password_is_accepted(operator: Any) -> None:
    validate_password("tundra-lantern-violin-47", user=operator)
