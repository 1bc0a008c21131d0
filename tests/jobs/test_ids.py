"""Job ids: time-sortable, ULID-shaped, decodable."""

from __future__ import annotations

from kinoit.jobs import is_job_id, job_id_time, new_job_id


def test_ids_sort_by_time_and_decode() -> None:
    a = new_job_id(1_800_000_000.000, b"\xff" * 10)
    b = new_job_id(1_800_000_000.001, b"\x00" * 10)
    assert a < b
    assert is_job_id(a) and len(a) == 26
    assert job_id_time(b) == 1_800_000_000.001


def test_ids_are_unique() -> None:
    assert len({new_job_id(1_800_000_000.0) for _ in range(1000)}) == 1000


def test_is_job_id_rejects_other_strings() -> None:
    assert not is_job_id("../etc/passwd")
    assert not is_job_id("01arz3ndektsv4rrffq69g5fav")  # lower case
    assert not is_job_id("")
