"""The demo: the whole path on embedded defaults, small enough for a 2-core CPU.

Sample data from photographs shipped in scikit-image -> train LDMIC-fast and the
single-view baseline briefly (same steps) -> archive both sample datasets with each ->
restore -> one table, with JPEG and x265-intra at LDMIC-fast's bit rate on each dataset
beside the learned codecs, plus where to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mvarchive.datasets import build_sample_datasets, discover_dataset
from mvarchive.evaluation.baselines import BaselineError
from mvarchive.evaluation.matched import match_rate
from mvarchive.infra import ServicesConfig, mlflow_ui_command
from mvarchive.reporting import summary_markdown, summary_table
from mvarchive.tracking import TrackingConfig
from mvarchive.training import TrainConfig

from .archive import ArchiveConfig, archive_dataset
from .restore import RestoreConfig, restore_dataset
from .runtime import dask_session, prefect_session, run_on_dask
from .train import train_codec


@dataclass
class DemoConfig:
    """The demo's training recipe, chosen for a 2-core CPU and minutes, not the papers' days.

    Measured on the stereo sample (``benchmarks/results/demo_codec.md``, where this recipe beats
    JPEG: BD-rate -22 % in PSNR, -48 % in MS-SSIM; still behind WebP and x265 in PSNR): at equal compute,
    many small steps beat few large ones (batch 1 beat batch 2 and 4), lr 1e-3 beat 5e-4 and
    2e-3, and the paper schedule (×0.5 at 1/4, 1/2, 3/4 of the run) settles the weights at the
    end. The sample is tiny (four stereo pairs), so training and evaluation data overlap.
    """

    output_dir: str = "demo-output"
    steps: int = 4800  # batch 1: about the compute of the former 2000 steps of batch 4
    batch_size: int = 1
    crop: int = 128
    lmbda: float = 384.0  # low rates: where a small learned codec is furthest ahead of JPEG
    learning_rate: float = 1e-3  # 10x the papers' 1e-4: tiny models, minutes of training
    lr_schedule: str = "paper"
    preset: str = "tiny"
    codecs: tuple[str, ...] = ("ldmic-fast", "single-view-mbt2018-mean")
    baselines: tuple[str, ...] = ("jpeg", "x265-intra")  # at the first codec's bit rate, per dataset
    shard_size: int = 2

    def train_config(self, dataset: str, output_dir: str, codec: str) -> TrainConfig:
        """The training run of ``codec`` in the demo."""
        return TrainConfig(
            dataset=dataset, output_dir=output_dir, codec=codec, preset=self.preset, steps=self.steps,
            batch_size=self.batch_size, crop=self.crop, lmbda=self.lmbda, learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule, checkpoint_every=max(self.steps // 4, 1), log_every=20,
        )


def run_demo(config: DemoConfig, services: ServicesConfig, console: Console) -> list[tuple[str, dict[str, float]]]:
    root = Path(config.output_dir).resolve()
    tracking = TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment)
    console.print(f"[bold]1/4[/] sample datasets from scikit-image photographs -> {root / 'data'}")
    sample = build_sample_datasets(root / "data")
    datasets = {"stereo": sample.stereo, "rig": sample.rig}
    rows: list[tuple[str, dict[str, float]]] = []
    with prefect_session(services) as api_url:
        checkpoints = {}
        for codec in config.codecs:
            console.print(f"[bold]2/4[/] training {codec} ({config.preset}) for {config.steps} steps "
                          "on the stereo sample")
            report = train_codec(config.train_config(str(sample.stereo), str(root / "checkpoints" / codec), codec),
                                 tracking)
            checkpoints[codec] = report.result.checkpoint
        with dask_session(services, api_url) as cluster:
            for name, path in datasets.items():
                for codec in config.codecs:
                    archive = root / "archives" / f"{name}-{codec}"
                    restored = root / "restored" / f"{name}-{codec}"
                    console.print(f"[bold]3/4[/] archiving {name} with {codec} -> {archive}")
                    encoded = run_on_dask(archive_dataset, cluster, api_url, config=ArchiveConfig(
                        source=str(path), dest=str(archive), codec=codec, preset=config.preset,
                        checkpoint=checkpoints[codec], shard_size=config.shard_size,
                        metrics_fraction=1.0,  # four groups: measure every one (the default samples 10 %)
                    ), tracking=tracking)
                    console.print(f"[bold]4/4[/] restoring {archive} -> {restored}")
                    decoded = run_on_dask(restore_dataset, cluster, api_url,
                                          # the demo owns this folder: a re-run replaces its own output
                                          config=RestoreConfig(archive=str(archive), out=str(restored), overwrite=True),
                                          tracking=tracking)
                    rows.append((f"{codec} / {name}", {**encoded.summary, "decode_s": decoded.decode_s}))
                    if codec == config.codecs[0]:
                        rows += matched_baselines(config, path, name, encoded.summary["bpp"], console)
    console.print(summary_table(rows, title="mvarchive demo (bpp from real bitstream bytes)"))
    (root / "summary.md").write_text(summary_markdown(rows))
    console.print(f"archives:       {root / 'archives'}")
    console.print(f"restored:       {root / 'restored'}")
    console.print(f"checkpoints:    {root / 'checkpoints'}")
    console.print(f"summary table:  {root / 'summary.md'}")
    console.print("MLflow UI (paste the next line):")
    console.print(mlflow_ui_command(services.resolved_mlflow_uri()), soft_wrap=True, highlight=False, markup=False)
    return rows


def matched_baselines(config: DemoConfig, dataset: Path, name: str, bpp: float,
                      console: Console) -> list[tuple[str, dict[str, float]]]:
    """The demo's classical codecs at ``bpp`` on ``dataset``: one row each, or a line saying why
    a baseline cannot run here (its tool is missing)."""
    groups = discover_dataset(str(dataset)).groups
    rows = []
    for baseline in config.baselines:
        console.print(f"      {baseline} at {config.codecs[0]}'s {bpp:.3f} bpp on {name}")
        try:
            point = match_rate(baseline, groups, bpp)
        except BaselineError as exc:
            console.print(f"      {baseline}: unavailable ({exc})", highlight=False)
            continue
        rows.append((f"{baseline} ({point.label}) / {name}", point.summary))
    return rows
