"""States and name validation."""

from __future__ import annotations

import pytest
from kinoit.errors import InvalidParameter
from kinoit.jobs import JobState, TaskState, check_stage, check_task_id


def test_states_are_strings_stored_as_is() -> None:
    assert JobState.COMPLETED == "completed"
    assert [s.value for s in JobState] == ["queued", "running", "completed", "failed", "cancelled"]
    assert {s for s in JobState if s.is_terminal} == {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    }


def test_task_state_letters_round_trip() -> None:
    for state in TaskState:
        assert TaskState.from_letter(state.letter) is state


@pytest.mark.parametrize("stage", ["", "a|b", "1abc", "x" * 40, "tr anscode"])
def test_bad_stage_names_are_refused(stage: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        check_stage(stage)
    assert info.value.field == "stage"


def test_good_names_pass() -> None:
    assert check_stage("transcode") == "transcode"
    assert check_task_id("seg/00042:720p") == "seg/00042:720p"
    with pytest.raises(InvalidParameter):
        check_task_id("a b")
