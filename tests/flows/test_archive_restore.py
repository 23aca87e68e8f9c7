"""Archive and restore flows on a real LocalCluster under Prefect's test harness."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from mlflow import MlflowClient

from mvarchive.codecs import load_codec
from mvarchive.datasets import DatasetError, discover_dataset, load_group, load_image
from mvarchive.flows.archive import ArchiveConfig, archive_dataset
from mvarchive.flows.restore import RestoreConfig, restore_dataset
from mvarchive.flows.runtime import run_on_dask
from mvarchive.metrics import to_tensor, to_uint8
from mvarchive.storage import ArchiveError, ArchiveReader, Location
from mvarchive.tracking import TrackingConfig
from tests.archive_helpers import archive_in_process, archive_snapshot

pytestmark = pytest.mark.slow


def encoder_side(codec, views) -> np.ndarray:
    """The reconstruction the encoder computes, with the workers' thread count (1 each here):
    CPU convolutions may round differently with other thread counts."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return to_uint8(codec.compress(to_tensor(views)).x_hat)
    finally:
        torch.set_num_threads(threads)


def run(flow, flow_env, **params):
    services, api_url = flow_env
    return run_on_dask(flow, services, api_url, show_progress=False, **params)


def test_archive_then_restore_reproduces_encoder_reconstruction(
    flow_env, sample_data, trained_checkpoint, tmp_path, mlflow_uri
):
    source_bytes = {p: p.read_bytes() for p in sample_data.rig.rglob("*.png")}
    dest, out = tmp_path / "archive", tmp_path / "restored"
    report = run(archive_dataset, flow_env, config=ArchiveConfig(
        source=str(sample_data.rig), dest=str(dest), codec="ldmic-fast", preset="tiny",
        checkpoint=trained_checkpoint, shard_size=3,
    ), tracking=TrackingConfig(mlflow_uri, "tests"))
    assert report.summary["groups"] == 4 and report.summary["views"] == 12
    assert 0 < report.summary["bpp"] < 8
    restored = run(restore_dataset, flow_env, config=RestoreConfig(archive=str(dest), out=str(out)))
    assert restored.images == 12
    # decoded in other processes (Dask workers) == what the encoder reconstructed here
    codec = load_codec(trained_checkpoint)
    index = discover_dataset(str(sample_data.rig))
    for group in index.groups:
        views = load_group(group)
        expected = encoder_side(codec, views)
        for k, view in enumerate(group.views):
            got = load_image(str(out / view.camera / f"{group.name}.png"))
            assert got.shape == views[k].shape
            np.testing.assert_array_equal(got, expected[k])
    assert {p: p.read_bytes() for p in sample_data.rig.rglob("*.png")} == source_bytes  # source untouched
    assert [c.status.value for c in restored.checks] == ["ok"] * 4
    # the run is in MLflow with its parameters, metrics and summary artifact
    client = MlflowClient(mlflow_uri)
    run_info = client.get_run(report.mlflow_run_id)
    assert run_info.data.params["codec"] == "ldmic-fast"
    assert run_info.data.params["weights_digest"] == ArchiveReader(Location(str(dest))).meta.codec.weights_digest
    assert run_info.data.params["shard_size"] == "3"
    assert abs(run_info.data.metrics["bpp"] - report.summary["bpp"]) < 1e-9
    assert "summary.md" in [a.path for a in client.list_artifacts(report.mlflow_run_id)]
    # what a drift detector reads: the archive and its run as tags, the rate per shard, the run's means
    assert run_info.data.tags["mvarchive.archive"] == str(dest) and run_info.data.tags["mvarchive.run"] == report.run_id
    assert [m.step for m in client.get_metric_history(report.mlflow_run_id, "rate_bpp")] == [0, 1]
    assert abs(run_info.data.metrics["run_bpp"] - report.run_summary["bpp"]) < 1e-9
    assert (report.groups_added, report.groups_changed, report.groups_vanished) == (4, 0, 0)
    assert [r.id for r in ArchiveReader(Location(str(dest))).runs] == [report.run_id]


def test_interrupted_archive_resumes_to_the_same_archive(
    flow_env, sample_data, trained_checkpoint, tmp_path, monkeypatch
):
    config = dict(source=str(sample_data.stereo), codec="ldmic-fast", preset="tiny",
                  checkpoint=trained_checkpoint, shard_size=1)
    run(archive_dataset, flow_env, config=ArchiveConfig(dest=str(tmp_path / "full"), **config))

    # A run killed after its first shard: one blob, no index rows, the run still "running";
    # plus the temporary file of a blob whose upload never finished.
    partial = tmp_path / "partial"
    archive_in_process(ArchiveConfig(dest=str(partial), **config), shards=[0])
    (partial / "shards" / "r0001-dead-00001.1234abcd.tmp").write_bytes(b"half a blob")
    reader = ArchiveReader(Location(str(partial)))
    assert (reader.indexed_rows, len(reader.orphans), reader.is_complete()) == (0, 1, False)

    # resumed with the source typed as a relative path from another directory: the same archive
    monkeypatch.chdir(sample_data.stereo.parent)
    resumed = run(archive_dataset, flow_env, config=ArchiveConfig(dest=str(partial), **{**config, "source": "stereo"}))
    assert (resumed.shards_written, resumed.shards_skipped, resumed.groups_added) == (3, 1, 3)
    assert archive_snapshot(str(partial)) == archive_snapshot(str(tmp_path / "full"))
    after = ArchiveReader(Location(str(partial)))
    assert after.indexed_rows == 4 and after.orphans == [] and after.is_complete()
    assert [(r.status, r.adopted, r.added) for r in after.runs] == [("interrupted", 0, 0), ("finished", 1, 3)]


def test_archive_and_restore_on_s3(flow_env, sample_data, s3_bucket, tmp_path):
    url, options = s3_bucket
    dest = f"{url}/archives/stereo"
    report = run(archive_dataset, flow_env, config=ArchiveConfig(
        source=str(sample_data.stereo), dest=dest, codec="single-view-mbt2018-mean", preset="tiny",
        untrained=True, shard_size=2, dest_options=options,
    ))
    assert report.summary["groups"] == 4
    out = tmp_path / "restored"
    restored = run(restore_dataset, flow_env, config=RestoreConfig(
        archive=dest, out=str(out), groups=["motorcycle"], cameras=["right"], archive_options=options,
    ))
    assert restored.images == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["motorcycle/right.png"]
    codec = load_codec(name="single-view-mbt2018-mean", preset="tiny")
    views = load_group(discover_dataset(str(sample_data.stereo)).select(groups=["motorcycle"]).groups[0])
    expected = encoder_side(codec, views)[1]
    np.testing.assert_array_equal(load_image(str(out / "motorcycle" / "right.png")), expected)


def test_restore_refuses_the_source_and_unknown_names(flow_env, sample_data, tmp_path):
    dest = tmp_path / "archive"
    run(archive_dataset, flow_env, config=ArchiveConfig(
        source=str(sample_data.stereo), dest=str(dest), codec="single-view-mbt2018-mean", preset="tiny",
        untrained=True, shard_size=4))
    with pytest.raises(ArchiveError, match="overlaps the source"):
        run(restore_dataset, flow_env, config=RestoreConfig(archive=str(dest), out=str(sample_data.stereo)))
    with pytest.raises(ArchiveError, match="no camera"):
        run(restore_dataset, flow_env,
            config=RestoreConfig(archive=str(dest), out=str(tmp_path / "o"), cameras=["top"]))
    with pytest.raises(ArchiveError, match="no group"):
        run(restore_dataset, flow_env, config=RestoreConfig(archive=str(dest), out=str(tmp_path / "o"), groups=["zzz"]))
    with pytest.raises(ArchiveError, match="different archive job: codec differs"):
        run(archive_dataset, flow_env, config=ArchiveConfig(
            source=str(sample_data.stereo), dest=str(dest), codec="ldmic-fast", preset="tiny", untrained=True,
            shard_size=4))


def test_archive_reports_bad_input_by_group(flow_env, sample_data, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sample_data.stereo, broken)
    (broken / "coffee" / "right.png").unlink()
    with pytest.raises(DatasetError, match="coffee.*right|right.*coffee"):
        run(archive_dataset, flow_env, config=ArchiveConfig(
            source=str(broken), dest=str(tmp_path / "a"), codec="ldmic-fast", preset="tiny", untrained=True))
    assert not (tmp_path / "a").exists()  # nothing written before the dataset is validated
