"""Server-rendered listener pages."""

from __future__ import annotations
