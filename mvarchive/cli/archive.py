"""``mvarchive archive``, ``info`` and ``migrate``: write an archive, show what one holds, and
bring an old format up to date."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from .common import call_or_exit, out, services_of, storage_options


def archive_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Dataset folder or URL (local path, s3://bucket/prefix, ...).")],
    dest: Annotated[str, typer.Argument(help="Archive location (local path or s3://...). Re-running adds the source's new groups.")],
    codec: Annotated[str, typer.Option(help="Codec name (see `mvarchive codecs`).")] = "ldmic-fast",
    preset: Annotated[str, typer.Option(help="Size preset: paper or tiny.")] = "paper",
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", "--model", help="a checkpoint path/URL or models:/NAME@ALIAS or models:/NAME/VERSION; required.")] = None,
    reencode: Annotated[bool, typer.Option("--reencode", help="Encode again groups whose source files changed since they were archived.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait while another run writes this archive instead of failing.")] = False,
    untrained: Annotated[bool, typer.Option("--untrained", help="Encode with random weights (tests only; poor quality).")] = False,
    embed_model: Annotated[bool, typer.Option("--embed-model/--no-embed-model", help="Store the checkpoint in the archive so it restores anywhere.")] = True,
    layout: Annotated[str, typer.Option(help="auto, camera-folders, group-folders or manifest.")] = "auto",
    shard_size: Annotated[int, typer.Option(help="Groups per shard (one task each).")] = 4,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N: where the encode tasks run the analysis transforms (GPU workers only); coding stays exact on CPU.")] = "cpu",
    max_pixels: Annotated[int, typer.Option(help="Largest view in pixels; bigger images are refused (memory).")] = 16_000_000,
    metrics_fraction: Annotated[float, typer.Option(help="Share of groups whose MS-SSIM is measured (picked by group name, the same on reruns); 1.0 = every group. PSNR, bpp and the restore digest cover every group.")] = 0.1,
    source_options: Annotated[str | None, typer.Option(help="fsspec options for SOURCE as JSON (default: MVARCHIVE_STORAGE_OPTIONS for remote URLs).")] = None,
    dest_options: Annotated[str | None, typer.Option(help="fsspec options for DEST as JSON.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run's figures as JSON instead of a table.")] = False,
) -> None:
    """Encode a multi-view dataset into an archive (Prefect flow, shards on Dask)."""
    from mvarchive.flows.archive import ArchiveConfig, archive_dataset, plan_archive
    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.reporting import summary_table
    from mvarchive.tracking import TrackingConfig

    services = services_of(ctx)
    config = call_or_exit(
        ArchiveConfig,
        source=source, dest=dest, codec=codec, preset=preset, checkpoint=checkpoint, untrained=untrained,
        embed_model=embed_model, layout=layout, shard_size=shard_size, max_pixels=max_pixels, device=device,
        metrics_fraction=metrics_fraction,
        reencode=reencode, wait=wait, registry_uri=services.resolved_mlflow_uri(),
        source_options=storage_options(source_options, source, services.storage_options),
        dest_options=storage_options(dest_options, dest, services.storage_options),
    )
    plan = call_or_exit(plan_archive, config)  # every user error shows here, before any service starts
    if not plan.growth.todo:  # nothing to encode: report drift, start no service
        from mvarchive.flows.archive import report_drift

        report_drift(plan.location, plan.growth)
        if json_output:
            print(json.dumps({"archive": dest, "groups_added": 0, "groups_archived": plan.growth.archived,
                              "groups_changed": len(plan.growth.changed),
                              "groups_vanished": len(plan.growth.vanished)}, indent=2))
            return
        out.print(f"{dest}: nothing to add ({plan.growth.archived} groups archived, "
                  f"{len(plan.growth.changed)} changed, {len(plan.growth.vanished)} no longer in the source)")
        return
    with prefect_session(services) as api_url:
        report = call_or_exit(run_on_dask, archive_dataset, services, api_url, config=config,
                      tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    if json_output:
        print(json.dumps({
            "archive": dest, "run_id": report.run_id, "mlflow_run_id": report.mlflow_run_id, "summary": report.summary,
            "groups_added": report.groups_added, "groups_reencoded": report.groups_reencoded,
            "groups_changed": report.groups_changed, "groups_vanished": report.groups_vanished,
            "shards_written": report.shards_written, "shards_skipped": report.shards_skipped,
        }, indent=2, default=str))
        return
    out.print(summary_table([(codec, report.summary)], title=f"archive {dest}"))
    out.print(f"run {report.run_id}: {report.groups_added} group(s) encoded ({report.groups_reencoded} again), "
              f"{report.groups_changed} changed, {report.groups_vanished} no longer in the source; "
              f"shards written {report.shards_written}, found complete {report.shards_skipped}; "
              f"MLflow run {report.mlflow_run_id}")


def info_command(
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    options: Annotated[str | None, typer.Option(help="fsspec options as JSON.")] = None,
) -> None:
    """Show an archive's models, cameras, groups, run history and metrics."""
    from mvarchive.reporting import archive_summary
    from mvarchive.storage import ArchiveReader, Location, current_holder

    location = Location(archive_url, storage_options(options, archive_url, {}))
    reader = call_or_exit(ArchiveReader, location)
    meta = reader.meta
    holder = current_holder(location)
    data = {
        "archive": archive_url,
        "format": meta.format,
        "codec": asdict(meta.codec),
        "models": [asdict(m) for m in meta.all_models()],
        "dataset": meta.dataset_url,
        "layout": meta.layout,
        "content_digest": meta.content_digest,
        "environment": meta.environment,
        "cameras": list(meta.cameras),
        "groups": meta.num_groups,
        "groups_indexed": reader.indexed_rows,
        "groups_unindexed": len(reader.orphans),
        "complete": reader.is_complete(),
        "runs": [asdict(r) for r in reader.runs],
        "writer": asdict(holder) if holder else None,
        "summary": archive_summary(reader),
        "group_names": reader.names,
    }
    if json_output:
        print(json.dumps(data, indent=2, default=str))
        return
    out.print(f"[bold]{archive_url}[/]: format {meta.format}, codec {meta.codec.name} ({meta.codec.preset}), "
              f"{len(data['models'])} model(s)")
    for m in meta.all_models():
        where = (f"embedded ({m.embedded})" if m.embedded else f"untrained (seed {m.seed})" if m.seed is not None
                 else f"not embedded; read from {m.source}")
        out.print(f"  model {m.weights_digest[:12]}: {where}" + (f", registered {m.registered}" if m.registered else ""))
    out.print(f"written with torch {meta.environment.get('torch', '?')}, mvarchive {meta.environment.get('mvarchive', '?')}")
    out.print(f"dataset {meta.dataset_url} ({meta.layout}); cameras {', '.join(meta.cameras)}")
    out.print(f"{meta.num_groups} groups" + (f" ({len(reader.orphans)} not yet indexed)" if reader.orphans else "")
              + ("" if data["complete"] else "; the latest run did not finish (re-run archive to complete it)"))
    for r in reader.runs:
        out.print(f"  run {r.id} {r.started} {r.status}: +{r.added} added, {r.reencoded} re-encoded, "
                  f"{r.changed_skipped} changed (skipped), {r.vanished} vanished"
                  + (f", {r.adopted} adopted" if r.adopted else "") + f"; model {r.model[:12]}")
    if holder:
        out.print(f"being written now by run {holder.owner} on host {holder.host}")
    s = data["summary"]
    if s.get("groups"):
        measured = int(s.get("ms_ssim_groups", s["groups"]))
        ms = f"MS-SSIM {s['ms_ssim']:.4f} over {measured} of {int(s['groups'])} groups" if measured else "MS-SSIM not measured"
        out.print(f"bpp {s['bpp']:.4f}, PSNR {s['psnr']:.2f} dB, {ms}, {int(s['bytes'])} bytes")


def migrate_command(
    old: Annotated[str, typer.Argument(metavar="OLD", help="A format-2 archive (read only).")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="Where to write the format-3 archive (must not exist).")],
    shard_size: Annotated[int, typer.Option(help="Groups per blob in the new archive.")] = 64,
    old_options: Annotated[str | None, typer.Option(help="fsspec options for OLD as JSON.")] = None,
    new_options: Annotated[str | None, typer.Option(help="fsspec options for NEW as JSON.")] = None,
) -> None:
    """Copy a format-2 archive into format 3 without re-encoding (streams, latents and
    fingerprints are copied; the result verifies like the original)."""
    from mvarchive.storage import Location
    from mvarchive.storage.migrate import migrate_v2

    result = call_or_exit(migrate_v2, Location(old, storage_options(old_options, old, {})), Location(new, storage_options(new_options, new, {})),
                  shard_size=shard_size)
    out.print(f"migrated {result.groups} groups of {old} into {new} ({result.blobs} shards, run {result.run_id})")
