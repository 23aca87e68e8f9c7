"""A worker with another torch thread count than the encoder's still restores exact pixels:
the synthesis runs with the thread count the archive recorded for the group."""

from __future__ import annotations

import torch

from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import Status, check_group
from mvarchive.metrics import to_uint8
from mvarchive.storage import ArchiveReader, Location
from mvarchive.tasks import restore as restore_task
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from tests.archive_helpers import archive_in_process


def test_restore_with_two_threads_reproduces_a_one_thread_encode(
    sample_data, trained_checkpoint, tmp_path, monkeypatch
):
    plan = archive_in_process(ArchiveConfig(str(sample_data.rig), str(tmp_path / "a"), codec="ldmic-fast",
                                            preset="tiny", checkpoint=trained_checkpoint, shard_size=4))
    reader = ArchiveReader(plan.location)
    stored = reader.read_groups(range(reader.meta.num_groups))
    assert {g.fingerprint.threads for g in stored} == {1}  # encoded by a 1-thread "worker"

    # control: the plain 2-thread synthesis, without the recorded count
    codec = plan.codec.load()
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plain = [check_group(g.name, reader.cameras, g.fingerprint, to_uint8(d.x_hat), d.latents)
                 for g in stored for d in [codec.decompress(g.stream)]]
    finally:
        torch.set_num_threads(saved)
    assert all(c.status in (Status.OK, Status.CLOSE) for c in plain)

    # a worker whose share is 2 threads
    monkeypatch.setattr(restore_task, "prepare_torch", lambda: torch.set_num_threads(2) or 2)
    try:
        result = restore_groups_fn(RestoreJob(plan.location, tuple(range(reader.meta.num_groups)), (0, 1, 2),
                                              Location(str(tmp_path / "out")), plan.codec))
    finally:
        torch.set_num_threads(saved)
    assert [c.status for c in result.checks] == [Status.OK] * reader.meta.num_groups
    print("plain 2-thread decode:", [c.status.value for c in plain])
