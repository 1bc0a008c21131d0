"""outputs.directory through orchestrate: in the status, the webhook data and the
manifest of a job, and of a job answered from the result cache; a cache entry from
before outputs had a directory is made again rather than answered without one."""

from __future__ import annotations

from kinoit.service.planning import JOB_CACHE_STAGE
from kinoit.store.cid import CID

from .conftest import Harness


def test_status_and_manifest_link_the_directory(harness: Harness) -> None:
    job_id = harness.submit()
    harness.drain()
    job = harness.job(job_id)
    assert job["state"] == "completed", job
    directory = job["outputs"]["directory"]
    manifest = harness.store.dag_get(job["manifest"])
    assert manifest["outputs"]["directory"] == CID.parse(directory)
    assert manifest["outputs"]["mp4"]["90p"] == CID.parse(job["outputs"]["mp4"]["90p"])


def test_a_job_from_the_result_cache_carries_the_directory(harness: Harness) -> None:
    first = harness.submit()
    harness.drain()
    second = harness.submit()
    assert not harness.calls  # answered from the cache
    job = harness.job(second)
    assert job["state"] == "completed"
    assert job["outputs"]["directory"] == harness.job(first)["outputs"]["directory"]


def test_a_cache_entry_without_a_directory_is_made_again(harness: Harness) -> None:
    first = harness.submit()
    harness.drain()
    done = harness.job(first)
    spec = harness.pipeline.spec(first)
    old_outputs = {k: v for k, v in done["outputs"].items() if k != "directory"}
    harness.pipeline.cache.put(
        JOB_CACHE_STAGE, spec.source, spec.reuse_key(),
        {"manifest": done["manifest"], "outputs": old_outputs},
    )  # fmt: skip
    second = harness.submit()
    harness.drain()  # its tasks come from the result cache, the job is not the old entry
    job = harness.job(second)
    assert job["state"] == "completed"
    assert job["outputs"]["directory"] == done["outputs"]["directory"]


def test_a_cached_merge_without_a_directory_is_merged_again(harness: Harness) -> None:
    first = harness.submit()
    merge = next(c for c in harness.drain() if c.function == "merge")
    done = harness.job(first)
    spec = harness.pipeline.spec(first)
    # the job entry and the merge result as a merge before directories left them
    old_outputs = {k: v for k, v in done["outputs"].items() if k != "directory"}
    harness.pipeline.cache.put(
        JOB_CACHE_STAGE, spec.source, spec.reuse_key(),
        {"manifest": done["manifest"], "outputs": old_outputs},
    )  # fmt: skip
    harness.pipeline.cache.put(
        "merge", merge.body["plan"], {}, {"plan": merge.body["plan"], **old_outputs}
    )
    second = harness.submit()
    again = [c.function for c in harness.drain()]
    assert again == ["merge"]  # the rest is replayed from the cache
    assert harness.job(second)["outputs"]["directory"] == done["outputs"]["directory"]
