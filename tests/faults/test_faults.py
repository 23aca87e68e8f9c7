"""Faults during an archive run: a Dask worker SIGKILLed in the middle of a shard, the S3
server (SeaweedFS) restarted in the middle of a run; and credentials that must never reach
a record (Prefect API, MLflow, the archive itself).

Every faulty run is compared with an uninterrupted archive of the same job: the same groups,
each encoded exactly once, with equal streams, latents, fingerprints and metrics (all but
the timing column), and no leftover temporary objects.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from mvarchive.datasets import DatasetError, discover_dataset
from mvarchive.flows.archive import ArchiveConfig, archive_dataset
from mvarchive.flows.restore import RestoreConfig, VerifyConfig, restore_dataset, verify_archive
from mvarchive.flows.runtime import run_on_dask
from mvarchive.integrity import Status
from mvarchive.storage import ArchiveError, ArchiveReader, Location
from mvarchive.storage.options import secret_values
from mvarchive.tasks.retry import is_transient
from mvarchive.tracking import TrackingConfig
from tests.archive_helpers import archive_snapshot

pytestmark = pytest.mark.slow

#: One archive job for both faults: 4 groups of 2 views at ~512x640, one group per shard.
#: An untrained single-view codec (seeded weights) keeps the test free of training time;
#: at this size one group takes ~0.5-1 s to encode on one core, long enough to be caught
#: in the middle.
JOB = dict(codec="single-view-mbt2018-mean", preset="tiny", untrained=True, shard_size=1)
SHARDS = 4


def run(flow: Any, flow_env: tuple[Any, str], **params: Any) -> Any:
    services, api_url = flow_env
    began = time.monotonic()
    try:
        return run_on_dask(flow, services, api_url, show_progress=False, **params)
    finally:
        print(f"[timing] {flow.name}: {time.monotonic() - began:.1f} s")


# -- the data and the uninterrupted reference ----------------------------------------------

@pytest.fixture(scope="module")
def big_stereo(sample_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stereo sample (4 groups) at twice its size, mirrored."""
    root = tmp_path_factory.mktemp("big-stereo")
    for group in sorted(p for p in Path(sample_data.stereo).iterdir() if p.is_dir()):
        out = root / group.name
        out.mkdir()
        for image in sorted(group.glob("*.png")):
            with Image.open(image) as img:
                big = img.convert("RGB").resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)
            ImageOps.mirror(big).save(out / image.name, compress_level=1)
    return root


@pytest.fixture(scope="module")
def reference(flow_env, big_stereo, tmp_path_factory: pytest.TempPathFactory) -> Location:
    """The same job, uninterrupted."""
    dest = tmp_path_factory.mktemp("reference") / "archive"
    report = run(archive_dataset, flow_env, config=ArchiveConfig(source=str(big_stereo), dest=str(dest), **JOB))
    assert report.shards_written == SHARDS
    return Location(str(dest))


def fresh_fs(location: Location) -> tuple[Any, str]:
    """A filesystem without fsspec's instance or listing caches (sees what is stored now)."""
    import fsspec

    if location.is_local:
        return fsspec.filesystem("file"), str(location.local_path)
    protocol, path = location.url.split("://", 1)
    return fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False,
                             **location.storage_options), path.rstrip("/")


def archive_objects(location: Location) -> dict[str, bytes]:
    """Every object of an archive by its archive-relative key."""
    fs, root = fresh_fs(location)
    return {path[len(root) + 1:]: fs.cat_file(path) for path in fs.find(root)}


def assert_same_archive(got: Location, want: Location) -> None:
    """The same decoded content, one blob per shard, no temporary objects left behind."""
    a, b = archive_objects(got), archive_objects(want)
    kinds = lambda objects: sorted({k.split("/")[0] for k in objects if k != "lease.json"})  # noqa: E731
    assert kinds(a) == kinds(b), (sorted(a), sorted(b))
    assert not [k for k in a if k.endswith(".tmp")], sorted(a)
    assert len([k for k in a if k.startswith("shards/")]) == len([k for k in b if k.startswith("shards/")]) == SHARDS
    assert "lease.json" not in a  # released
    assert archive_snapshot(got) == archive_snapshot(want)


def group_census(location: Location, expected: Iterable[str]) -> tuple[set[str], dict[str, int]]:
    """(groups lost, groups encoded more than once): every row of the index and every
    unindexed blob counts; also checks a non-empty stream for each group."""
    reader = ArchiveReader(location)
    counts = Counter(reader.row_names())
    stored = reader.read_groups(reader.complete_indices())
    assert all(g.stream for g in stored)
    lost = set(expected) - set(counts)
    duplicated = {name: n for name, n in counts.items() if n > 1}
    return lost, duplicated


def assert_complete_and_verified(flow_env, location: Location, reference: Location, source: Path,
                                 verify: bool = True) -> None:
    expected = [g.name for g in discover_dataset(str(source)).groups]
    lost, duplicated = group_census(location, expected)
    print(f"{location}: {len(expected)} groups, lost {len(lost)}, duplicated {len(duplicated)}")
    assert (lost, duplicated) == (set(), {})
    assert_same_archive(location, reference)
    if not verify:  # byte-identical to an archive that another test verifies
        return
    checked = run(verify_archive, flow_env, config=VerifyConfig(
        archive=location.url, archive_options=location.storage_options))
    assert [c.group for c in checked.checks] == expected
    assert all(c.status is Status.OK for c in checked.checks), [c.describe() for c in checked.checks]


# -- 1. a worker killed in the middle of a shard -------------------------------------------

def test_worker_killed_mid_shard(flow_env, big_stereo, reference, tmp_path):
    """SIGKILL the worker process that is inside ``codec.compress`` of a shard.

    Timing: a thread asks every worker, every ~20 ms (``client.run``, served by the worker's
    event loop while the task thread computes), for the stacks of its threads; the first
    worker with a thread in ``compress`` called from ``encode_shard_fn`` is killed at once,
    with that shard's number read from the frame. Right after the kill the shard's
    completion marker must still be absent: the worker died in the middle of the shard,
    before writing it (a compress takes ~0.5-1 s, detection-to-kill ~ms).
    """
    from distributed import Client

    services, _ = flow_env
    dest = tmp_path / "archive"

    def shard_in_compress() -> tuple[int, int | None]:  # runs on the workers (pickled by value)
        import os as _os
        import sys as _sys

        for frame in _sys._current_frames().values():
            in_compress = False
            while frame is not None:
                if frame.f_code.co_name == "compress":
                    in_compress = True
                elif frame.f_code.co_name == "encode_shard_fn" and in_compress:
                    return _os.getpid(), int(frame.f_locals["job"].shard_id)
                frame = frame.f_back
        return _os.getpid(), None

    killed: dict[str, Any] = {}
    done = threading.Event()

    def killer(client: Client) -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            try:
                states = client.run(shard_in_compress, on_error="return")
            except Exception:  # noqa: BLE001 - a worker between states; ask again
                states = {}
            for address, state in states.items():
                if isinstance(state, tuple) and state[1] is not None:
                    pid, shard = state
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, shard=shard, address=address, at=time.monotonic(),
                                  marker_after_kill=bool(list((dest / "shards").glob(f"*-{shard:05d}.bin"))),
                                  markers_after_kill=len(list((dest / "shards").glob("*.bin"))))
                    return
            time.sleep(0.02)

    with Client(services.dask_address, set_as_default=False, timeout=60) as client:
        pids_before = set(client.run(os.getpid).values())
        thread = threading.Thread(target=killer, args=(client,), daemon=True)
        thread.start()
        config = ArchiveConfig(source=str(big_stereo), dest=str(dest), **JOB)
        rerun = None
        try:
            report = run(archive_dataset, flow_env, config=config)
        except Exception as exc:  # noqa: BLE001 - a rerun must then finish the job
            report, rerun = None, exc
        done.set()
        thread.join(timeout=30)
        if rerun is not None:
            report = run(archive_dataset, flow_env, config=config)
        # the cluster heals (the nanny restarts the worker) before the next test uses it
        client.wait_for_workers(services.dask_workers, timeout=120)
        pids_after = set(client.run(os.getpid).values())

    print(f"killed worker pid {killed.get('pid')} in shard {killed.get('shard')} "
          f"({killed.get('markers_after_kill')} shards complete then); "
          f"{'rerun after ' + repr(rerun) if rerun else 'the same run completed'}; report {report}")
    assert killed, "no worker was caught in the middle of a shard"
    assert killed["pid"] in pids_before and killed["pid"] not in pids_after
    assert not killed["marker_after_kill"], "the kill landed after the shard was written"
    assert list((dest / "shards").glob("*.bin"))  # where the probe looked
    assert killed["markers_after_kill"] < SHARDS
    assert report.shards_written + report.shards_skipped == SHARDS
    assert_complete_and_verified(flow_env, Location(str(dest)), reference, big_stereo)


# -- 2. the S3 server restarted in the middle of a run -------------------------------------

def test_s3_server_restart_mid_run(flow_env, big_stereo, reference, restartable_s3_server):
    """Stop SeaweedFS as soon as the first shard's blob is in S3 (polled every
    ~50 ms), keep it down for 1.5 s, start it again on the same ports with the same data.
    The run (or, if it fails during the outage, a rerun) completes, and the archive in S3
    holds the same groups as the uninterrupted local one, each encoded once."""
    server = restartable_s3_server
    bucket = server.make_bucket(f"restart-{uuid.uuid4().hex[:12]}")
    options = server.storage_options
    dest = Location(f"s3://{bucket}/archives/big", options)
    fs, root = fresh_fs(dest)
    markers = f"{root}/shards"
    outage: dict[str, Any] = {}
    done = threading.Event()

    def restarter() -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            try:
                complete = len([p for p in fs.ls(markers, detail=False, refresh=True) if p.endswith(".bin")])
            except (FileNotFoundError, OSError):
                complete = 0
            if complete:
                outage.update(complete_at_stop=complete, stopped=time.monotonic(), endpoint=server.endpoint_url)
                try:
                    server.restart(down_s=1.5)  # stop, 1.5 s down, start on the same ports with the same data
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    outage.update(error=exc)
                outage.update(started=time.monotonic())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=restarter, daemon=True)
    thread.start()
    config = ArchiveConfig(source=str(big_stereo), dest=dest.url, dest_options=options, **JOB)
    first_error = None
    try:
        report = run(archive_dataset, flow_env, config=config)
    except Exception as exc:  # noqa: BLE001 - a rerun must then finish the job
        first_error, report = exc, None
    finished = time.monotonic()
    done.set()
    thread.join(timeout=120)
    assert outage and "error" not in outage, f"the server was not restarted: {outage}"
    assert server.running and server.endpoint_url == outage["endpoint"]
    if first_error is not None:
        report = run(archive_dataset, flow_env, config=config)
        assert report.shards_skipped >= outage["complete_at_stop"]  # the rerun resumed
    retried = encode_attempts(bucket)
    print(f"S3 down from shard {outage.get('complete_at_stop')}/{SHARDS} for "
          f"{outage.get('started', 0) - outage.get('stopped', 0):.1f} s; "
          f"{'rerun after ' + repr(first_error) if first_error else 'the same run completed'}; "
          f"encode task runs with retries: {retried}; report {report}")
    assert outage["complete_at_stop"] < SHARDS, "the outage came after the last shard"
    assert finished > outage["started"]
    assert report.shards_written + report.shards_skipped == SHARDS
    assert_complete_and_verified(flow_env, dest, reference, big_stereo, verify=False)


def encode_attempts(marker: str) -> dict[str, int]:
    """Encode task runs that ran more than once (name -> run_count), of the flow runs whose
    parameters mention ``marker``."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_runs = {r.id for r in _pages(lambda n, o: client.read_flow_runs(limit=n, offset=o))
                     if marker in json.dumps(r.parameters, default=str)}
        runs = [r for r in _pages(lambda n, o: client.read_task_runs(limit=n, offset=o))
                if r.flow_run_id in flow_runs and r.name.startswith("encode-shard")]
    return {r.name: r.run_count for r in runs if r.run_count > 1}


# -- 3. credentials never reach a record ---------------------------------------------------

def _pages(read: Any, limit: int = 200) -> list[Any]:
    out: list[Any] = []
    while True:
        page = read(limit, len(out))
        out += page
        if len(page) < limit:
            return out


def prefect_records(since_s: float) -> dict[str, list[str]]:
    """Text of every flow run, task run, log, artifact and recent event in the Prefect API."""
    from datetime import datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventOccurredFilter

    with get_client(sync_client=True) as client:
        # task runs and logs of the workers arrive asynchronously: wait until they stop growing
        previous, stable_since = (-1, -1), time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            counts = (len(_pages(lambda n, o: client.read_task_runs(limit=n, offset=o))),
                      len(_pages(lambda n, o: client.read_logs(limit=n, offset=o))))
            if counts != previous:
                previous, stable_since = counts, time.monotonic()
            elif time.monotonic() - stable_since > 3:
                break
            time.sleep(0.5)
        records = {
            "flow_runs": [r.model_dump_json() for r in _pages(lambda n, o: client.read_flow_runs(limit=n, offset=o))],
            "task_runs": [r.model_dump_json() for r in _pages(lambda n, o: client.read_task_runs(limit=n, offset=o))],
            "logs": [r.model_dump_json() for r in _pages(lambda n, o: client.read_logs(limit=n, offset=o))],
            "artifacts": [r.model_dump_json() for r in client.read_artifacts()],
        }
        since = datetime.now(UTC) - timedelta(seconds=since_s + 60)
        page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
        events = list(page.events)
        while page.next_page:
            page = client.read_events_page(page.next_page)
            events += page.events
        records["events"] = [e.model_dump_json() for e in events]
    return records


def mlflow_records(tracking_uri: str, tmp_path: Path) -> dict[str, list[str]]:
    """Text of every MLflow run: name, params, tags, and every artifact's content."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    out: dict[str, list[str]] = {"experiments": [repr(e) for e in experiments], "runs": [], "artifacts": []}
    for r in runs:
        out["runs"].append(repr({"name": r.info.run_name, "params": r.data.params, "tags": r.data.tags}))
        local = Path(client.download_artifacts(r.info.run_id, "", str(tmp_path / "mlflow-artifacts" / r.info.run_id)))
        out["artifacts"] += [p.read_bytes().decode("latin-1") for p in local.rglob("*") if p.is_file()]
    return out


def leaks(secrets: list[str], records: dict[str, list[str]]) -> list[str]:
    return [f"{kind}[{i}]" for kind, texts in records.items() for i, text in enumerate(texts)
            if any(s in text for s in secrets)]


def test_credentials_stay_out_of_prefect_mlflow_and_the_archive(
    flow_env, sample_data, restartable_s3_server, mlflow_uri, tmp_path
):
    """Archive (with the model embedded), restore and verify on S3 through the flows with
    key and secret in the configs' options; then search the Prefect API (flow runs with their
    parameters, task runs, logs, artifacts, events), MLflow (runs' params, tags and artifacts)
    and every object in the bucket for the access key and the secret."""
    from mvarchive.codecs import load_codec, save_checkpoint

    server = restartable_s3_server
    bucket = server.make_bucket(f"creds-{uuid.uuid4().hex[:12]}")
    options = server.storage_options
    secrets = secret_values(options)
    assert secrets == [server.access_key, server.secret_key]
    checkpoint = tmp_path / "model.pt"  # embedded: workers then load the model from S3, with the options
    save_checkpoint(load_codec(name="single-view-mbt2018-mean", preset="tiny", seed=0), checkpoint)
    tracking = TrackingConfig(mlflow_uri, "tests")
    started = time.monotonic()
    dest = f"s3://{bucket}/archives/stereo"
    archived = run(archive_dataset, flow_env, config=ArchiveConfig(
        source=str(sample_data.stereo), dest=dest, codec="single-view-mbt2018-mean", preset="tiny",
        checkpoint=str(checkpoint), shard_size=2, dest_options=options,
    ), tracking=tracking)
    restored = run(restore_dataset, flow_env, config=RestoreConfig(
        archive=dest, out=f"s3://{bucket}/restored", archive_options=options, out_options=options,
    ), tracking=tracking)
    verified = run(verify_archive, flow_env, config=VerifyConfig(archive=dest, archive_options=options),
                   tracking=tracking)
    assert archived.summary["groups"] == 4 and restored.images == 8
    assert all(c.status is Status.OK for c in verified.checks)

    prefect = prefect_records(time.monotonic() - started)
    mlflow = mlflow_records(mlflow_uri, tmp_path)
    fs, _ = fresh_fs(Location(f"s3://{bucket}", options))
    stored = {"objects": [fs.cat_file(p).decode("latin-1") for p in fs.find(bucket)]}
    # the searches saw the runs: parameters are recorded, with the options masked
    ours = [r for r in prefect["flow_runs"] if bucket in r]
    assert len(ours) == 3 and all("**********" in r for r in ours)
    assert len(mlflow["runs"]) == 3 and any(bucket in r for r in mlflow["runs"])
    assert any("/model/" in p and p.endswith(".pt") for p in fs.find(bucket))
    found = {**{f"prefect.{k}": v for k, v in prefect.items()}, **{f"mlflow.{k}": v for k, v in mlflow.items()},
             **{f"s3.{k}": v for k, v in stored.items()}}
    print({k: len(v) for k, v in found.items()})
    assert leaks(secrets, found) == []


# -- retry classification ------------------------------------------------------------------

def test_only_transient_errors_are_retried():
    import aiohttp
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
    from fsspec.exceptions import FSTimeoutError

    from mvarchive.codecs import BitstreamError, CheckpointError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    def caused(error: BaseException, cause: BaseException) -> BaseException:
        try:
            raise error from cause
        except BaseException as raised:  # noqa: BLE001
            return raised

    transient = [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),  # what s3fs raises while SeaweedFS is down
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        aiohttp.ServerDisconnectedError(), FSTimeoutError(), ConnectionResetError(), TimeoutError(),
        OSError(5, "Input/output error"), client_error("SlowDown", 503), client_error("InternalError", 500),
        caused(RuntimeError("zarr write failed"), EndpointConnectionError(endpoint_url="http://x")),
    ]
    permanent = [
        DatasetError("bad image"), BitstreamError("bad stream"), ArchiveError("other job"), CheckpointError("gone"),
        caused(DatasetError("cannot read"), OSError(5, "EIO")),  # a bad input stays bad input
        FileNotFoundError("no such key"), PermissionError("access denied"), FileExistsError("exists"),
        client_error("AccessDenied", 403), client_error("NoSuchBucket", 404),
        ValueError("shape"), RuntimeError("torch"), MemoryError(),
    ]
    assert [e for e in transient if not is_transient(e)] == []
    assert [e for e in permanent if is_transient(e)] == []
