"""Tests for imgscraper.downloadermiddlewares.retryafter."""

from __future__ import annotations

from imgscraper.downloadermiddlewares.retryafter import parse_retry_after


def test_parse_retry_after():
    assert parse_retry_after(b"120") == 120.0
    assert parse_retry_after("Wed, 25 Nov 2026 03:00:10 GMT", now=1795575600.0) == 10.0
    assert parse_retry_after("Wed, 25 Nov 2026 02:00:00 GMT", now=1795575600.0) == 0.0
    assert parse_retry_after(b"soon") is None
    assert parse_retry_after(None) is None

