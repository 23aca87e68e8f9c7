"""Encode tasks measure MS-SSIM on a sampled fraction of groups (by name) and everything else on
all of them; the flow's shards keep every worker busy to the end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from mvarchive.flows.archive import ArchiveConfig, plan_archive, plan_shards
from mvarchive.metrics import measured_for_quality
from mvarchive.storage import ArchiveReader, ArchiveWriter
from mvarchive.tasks.encode import EncodeShardJob, encode_shard_fn


@pytest.mark.parametrize(
    "groups,shard_size,slots", [(52, 4, 2), (13, 4, 2), (6, 4, 2), (5, 1, 2), (3, 8, 4), (9, 2, 1)]
)
def test_shards_cover_the_groups_in_order_balanced_over_the_workers(groups, shard_size, slots):
    todo = list(range(100, 100 + groups))
    shards = plan_shards(todo, shard_size, slots)
    assert [g for shard in shards for g in shard] == todo  # every group once, in order
    sizes = [len(s) for s in shards]
    assert max(sizes) <= shard_size and max(sizes) - min(sizes) <= 1
    assert len(shards) % slots == 0 or len(shards) == groups  # no lone last shard while a worker idles
    assert len(shards) <= max(-(-groups // shard_size), min(groups, slots)) + slots - 1
    assert plan_shards([], shard_size, slots) == []


def _dataset(root: Path, names: list[str], side: int = 176) -> Path:
    """Stereo pairs of photo crops (sides >= 161: MS-SSIM is defined)."""
    photo = skdata.astronaut()
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        top = 40 * i
        Image.fromarray(photo[top : top + side, 100 : 100 + side]).save(root / name / "left.png")
        Image.fromarray(photo[top : top + side, 110 : 110 + side]).save(root / name / "right.png")
    return root


def _encode(source: Path, dest: Path, fraction: float) -> ArchiveReader:
    config = ArchiveConfig(str(source), str(dest), codec="ldmic-fast", preset="tiny", untrained=True,
                           metrics_fraction=fraction, layout="group-folders")
    plan = plan_archive(config)
    writer = ArchiveWriter.create_or_resume(plan.location, plan.meta)
    run_id = writer.begin_run(plan.meta.codec, planned=len(plan.growth.todo))
    todo = list(plan.growth.todo)
    result = encode_shard_fn(EncodeShardJob(
        plan.location, writer.meta, 0, tuple(plan.index.groups[i] for i in todo), plan.codec, run_id=run_id,
        digests=tuple(plan.digests[i] for i in todo), metrics_fraction=config.metrics_fraction))
    writer.append_rows(list(result.rows))
    writer.finish_run(added=len(result.rows))
    writer.finalize()
    return ArchiveReader(plan.location)


def test_ms_ssim_only_on_sampled_groups_digest_and_psnr_on_all(tmp_path):
    candidates = [f"pair-{i:02d}" for i in range(40)]
    measured = [n for n in candidates if measured_for_quality(n, 0.5)][:2]
    skipped = [n for n in candidates if not measured_for_quality(n, 0.5)][:1]
    source = _dataset(tmp_path / "data", sorted(measured + skipped))
    sampled = _encode(source, tmp_path / "sampled", 0.5)
    full = _encode(source, tmp_path / "full", 1.0)

    columns = list(sampled.meta.metrics)
    for reader in (sampled, full):
        table = reader.metrics_table()
        assert np.isfinite(table[:, columns.index("psnr")]).all() and (table[:, columns.index("bpp")] > 0).all()
    ms_sampled = dict(zip(sampled.names, sampled.metrics_table()[:, columns.index("ms_ssim")]))
    ms_full = dict(zip(full.names, full.metrics_table()[:, columns.index("ms_ssim")]))
    assert all(0 < ms_full[n] < 1 for n in full.names)
    assert all(ms_sampled[n] == pytest.approx(ms_full[n]) for n in measured)
    assert all(math.isnan(ms_sampled[n]) for n in skipped)
    # sampling changes nothing else: the same bytes and reconstruction digests for every group
    a = sampled.read_groups(range(3))
    b = full.read_groups(range(3))
    assert [(g.name, g.stream, g.fingerprint) for g in a] == [(g.name, g.stream, g.fingerprint) for g in b]


def test_metrics_fraction_is_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="--metrics-fraction"):
        plan_archive(ArchiveConfig(str(tmp_path), str(tmp_path / "a"), untrained=True, metrics_fraction=1.5))
