"""Fixtures of the local package's tests: the real orchestrate service of
tests/service (``kinoit watch`` reads what it writes)."""

from tests.service.conftest import harness, harness_factory

__all__ = ["harness", "harness_factory"]
