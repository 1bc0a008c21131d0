from pathlib import Path

import pytest
from kinoit.config import DEFAULT_MAX_ACTIVE_JOBS, load_settings
from kinoit.errors import InvalidParameter, KinoitError


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings.home == Path("~/.kinoit").expanduser()
    assert settings.ipfs_api is None
    assert settings.max_active_jobs == DEFAULT_MAX_ACTIVE_JOBS
    assert settings.failpoints == {}
    assert settings.functions_dir is None and settings.scratch_dir is None
    assert settings.store_dir == settings.home / "store"


def test_values_are_read_from_prefixed_variables(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "KINOIT_HOME": str(tmp_path),
            "KINOIT_IPFS_API": " http://127.0.0.1:5001 ",
            "KINOIT_MAX_ATTEMPTS": "5",
            "KINOIT_LEASE_SECONDS": "2.5",
            "KINOIT_ALLOW_PRIVATE_CALLBACKS": "yes",
            "KINOIT_DISPATCH_WINDOW": "3",
            "KINOIT_TICK_SECONDS": "0",
            "KINOIT_FUNCTIONS_DIR": str(tmp_path / "functions"),
            "KINOIT_SCRATCH_DIR": str(tmp_path / "scratch"),
            "KINOIT_FAILPOINTS": "stage.split=error",
        }
    )
    assert settings.home == tmp_path
    assert settings.ipfs_api == "http://127.0.0.1:5001"
    assert settings.max_attempts == 5
    assert settings.lease_seconds == 2.5
    assert settings.allow_private_callbacks is True
    assert settings.dispatch_window == 3
    assert settings.tick_seconds == 0
    assert settings.functions_dir == tmp_path / "functions"
    assert settings.scratch_dir == tmp_path / "scratch"
    assert set(settings.failpoints) == {"stage.split"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KINOIT_MAX_ATTEMPTS", "three"),
        ("KINOIT_MAX_ATTEMPTS", "0"),
        ("KINOIT_LEASE_SECONDS", "nan"),
        ("KINOIT_ALLOW_PRIVATE_CALLBACKS", "maybe"),
        ("KINOIT_DISPATCH_WINDOW", "sixteen"),
        ("KINOIT_DISPATCH_WINDOW", "0"),
        ("KINOIT_TICK_SECONDS", "-1"),
        ("KINOIT_FAILPOINTS", "stage.split"),
        ("KINOIT_FAILPOINTS", "stage.split=explode"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        load_settings({name: value})
    assert info.value.field == name
    assert isinstance(info.value, KinoitError)


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "kinoit-api-token").write_text("s3cret\n")
    settings = load_settings({"KINOIT_SECRETS_DIR": str(tmp_path)})
    assert settings.secret("kinoit-api-token") == "s3cret"
    assert settings.secret("missing") is None


def test_the_dispatch_window_follows_the_configured_workers() -> None:
    # unset: the fixed default; KINOIT_WORKERS: two tasks in flight per worker
    assert load_settings({}).dispatch_window == 16
    assert load_settings({}).workers == 0
    settings = load_settings({"KINOIT_WORKERS": "64"})
    assert settings.workers == 64 and settings.dispatch_window == 128
    assert load_settings({"KINOIT_WORKERS": "3"}).dispatch_window == 6
    # an explicit window stands, whatever the workers
    both = load_settings({"KINOIT_WORKERS": "64", "KINOIT_DISPATCH_WINDOW": "10"})
    assert both.dispatch_window == 10


@pytest.mark.parametrize("value", ["many", "-1"])
def test_a_bad_worker_count_names_the_variable(value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        load_settings({"KINOIT_WORKERS": value})
    assert info.value.field == "KINOIT_WORKERS"
