"""Abuse limits: counted per window in the cache, 429 with Retry-After, failing open."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from genres.limits import Limit, client_address, limit_exceeded

TIGHT = Limit("test-tight", requests=3, window_seconds=60)


def test_requests_within_the_limit_pass_and_the_next_one_gets_the_rest_of_the_window() -> None:
    start = 1_800_000_000.0  # a window boundary (divisible by 60)

    passed = [limit_exceeded(TIGHT, who="alice", now=start + i) for i in range(3)]
    over = limit_exceeded(TIGHT, who="alice", now=start + 20.5)

    assert passed == [None, None, None]
    assert over == 40  # seconds until the window ends


def test_listeners_are_counted_apart_and_a_new_window_starts_from_zero() -> None:
    start = 1_800_000_060.0
    for i in range(4):
        limit_exceeded(TIGHT, who="alice", now=start + i)

    assert limit_exceeded(TIGHT, who="bob", now=start + 5) is None
    assert limit_exceeded(TIGHT, who="alice", now=start + 60) is None


def test_the_limit_fails_open_when_the_cache_is_down(monkeypatch) -> None:
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "add", broken)
    assert all(limit_exceeded(TIGHT, who="alice", now=1_800_000_000.0) is None for _ in range(10))


def test_a_cache_that_answers_nothing_counts_nothing(monkeypatch) -> None:
    """django-redis with IGNORE_EXCEPTIONS answers None to add() and incr() with Redis down."""
    from django.core.cache import cache

    monkeypatch.setattr(cache, "add", lambda *a, **k: None)
    monkeypatch.setattr(cache, "incr", lambda *a, **k: None)
    assert all(limit_exceeded(TIGHT, who="alice", now=1_800_000_000.0) is None for _ in range(10))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", "", "203.0.113.9"),
        # A client cannot choose its address by sending the header itself.
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),
        # Behind our proxy (loopback by default): the address the proxy appended last.
        ("127.0.0.1", "10.9.9.9, 198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "not an address", "127.0.0.1"),
    ],
)
def test_the_client_address_believes_only_our_proxies(peer, forwarded, expected) -> None:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR=peer, **extra)

    assert client_address(request) == expected


def test_a_request_without_a_peer_has_no_address_rather_than_a_made_up_one() -> None:
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="198.51.100.7")
    del request.META["REMOTE_ADDR"]

    assert client_address(request) is None
