"""The evaluation: metrics on synthetic images, records and averages, JSON round trip, plots,
and the Prefect flow on Dask writing results and MLflow artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvarchive.evaluation import (
    CodedGroup,
    EvaluationResult,
    compare_results,
    learned_points,
    measure_group,
    plan_points,
    run_evaluation,
)
from mvarchive.metrics import ms_ssim, psnr, views_ms_ssim

OUTPUTS = {"results.json", "rd_psnr.png", "rd_ms_ssim.png", "bd_table.md", "rd_table.md"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_dataset(sample_data, tmp_path_factory) -> str:
    """Two groups of two 176x192 views (crops of the stereo sample): small, but MS-SSIM still
    has its five scales (sides >= 161). Two folders of two images: pass layout="group-folders"."""
    root = tmp_path_factory.mktemp("small-stereo")
    for group in ("chelsea", "coffee"):
        for camera in ("left", "right"):
            image = Image.open(sample_data.stereo / group / f"{camera}.png")
            (root / group).mkdir(exist_ok=True)
            image.crop((40, 30, 232, 206)).save(root / group / f"{camera}.png")
    return str(root)


def test_metrics_agree_with_known_values_on_a_synthetic_image():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (2, 170, 180, 3), dtype=np.uint8)  # <= 254, so +1 never clips
    shifted = image + 1
    # MSE = 1 -> PSNR = 10 log10(255^2) = 48.13 dB
    assert psnr(image, shifted) == pytest.approx(48.1308, abs=1e-4)
    assert views_ms_ssim(image, image) == pytest.approx([1.0, 1.0], abs=1e-6)
    coded = CodedGroup(total_bytes=1000, view_bytes=[600, 400], decoded=shifted, encode_s=0.5, decode_s=0.25)
    result = measure_group("g", ["a", "b"], image, coded)
    assert result.psnr == pytest.approx(48.1308, abs=1e-4) and result.psnr_gap == pytest.approx(0.0, abs=1e-9)
    assert result.bpp == pytest.approx(8 * 1000 / (2 * 170 * 180))
    assert result.per_view[0].bpp == pytest.approx(8 * 600 / (170 * 180))
    # the batched float32 MS-SSIM agrees with the project's float64 metric
    noisy = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    batched = views_ms_ssim(image, noisy)
    for k in range(2):
        assert batched[k] == pytest.approx(ms_ssim(image[k], noisy[k]), abs=1e-5)
    assert all(math.isnan(v) for v in views_ms_ssim(image[:, :100], image[:, :100]))  # too small for 5 scales


def test_evaluation_records_averages_and_json_round_trip(small_dataset, tmp_path):
    from mvarchive.evaluation.plots import write_rd_plots

    specs, unavailable = plan_points(["ldmic-fast:tiny"], [], "jpeg,webp")
    assert [s.codec for s in specs][:1] == ["ldmic-fast"] and not unavailable
    result = run_evaluation(small_dataset, specs, unavailable, anchor="jpeg", layout="group-folders")
    assert [c.name for c in result.curves] == ["ldmic-fast", "jpeg", "webp"]
    assert result.groups == ["chelsea", "coffee"] and result.cameras == ["left", "right"]
    for curve in result.curves:
        bpps = [p.summary["bpp"] for p in curve.points]
        assert bpps == sorted(bpps)
        for point in curve.points:
            groups = point.groups
            assert len(groups) == 2 and all(len(g.per_view) == 2 for g in groups)
            pixels = sum(g.views * g.height * g.width for g in groups)
            assert point.summary["bpp"] == pytest.approx(8 * sum(g.bytes for g in groups) / pixels)
            assert point.summary["psnr"] == pytest.approx(np.mean([v.psnr for g in groups for v in g.per_view]))
            for g in groups:
                psnrs = [v.psnr for v in g.per_view]
                assert g.psnr_gap == pytest.approx(max(psnrs) - min(psnrs))
                assert g.encode_s > 0 and g.decode_s > 0 and 0 < g.ms_ssim <= 1
                if curve.kind == "baseline":  # per-view codecs know each view's bytes
                    assert sum(v.bytes for v in g.per_view) == g.bytes
                else:  # one stream per group
                    assert all(v.bytes is None for v in g.per_view)
    learned = result.curve("ldmic-fast")
    assert len(learned.points) == 1 and "untrained" in learned.points[0].label
    assert learned.points[0].info["weights_digest"]
    webp = result.bd_for("webp")
    assert webp.anchor == "jpeg" and webp.method == "akima" and math.isfinite(webp.bd_rate_psnr)
    assert "at least 2 rate points" in result.bd_for("ldmic-fast").note  # one point makes no curve

    text = result.to_json()
    json.loads(text)  # strict JSON: no NaN / Infinity
    again = EvaluationResult.from_json(text)
    assert again.to_json() == text
    assert compare_results(result, again, "webp").bd_rate_psnr == pytest.approx(0.0, abs=1e-9)
    paths = write_rd_plots(result, tmp_path)
    for path in paths.values():
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def test_checkpoints_are_rate_points_of_the_codec_they_hold(tmp_path):
    from mvarchive.codecs import create_codec, save_checkpoint

    paths = []
    for lmbda in (256, 1024):
        path = tmp_path / f"l{lmbda}.pt"
        save_checkpoint(create_codec("ldmic-fast", "tiny"), path, extra={"lmbda": lmbda})
        paths.append(str(path))
    points = learned_points([], paths)
    assert [p.label for p in points] == ["λ=256 (l256)", "λ=1024 (l1024)"]
    assert all(p.ref.checkpoint and p.ref.preset == "tiny" for p in points)
    with pytest.raises(ValueError, match="not among --codec"):
        learned_points(["single-view-mbt2018-mean"], paths)
    with pytest.raises(KeyError, match="no preset"):
        learned_points(["ldmic-fast:huge"])


@pytest.mark.slow
def test_flow_on_dask_writes_json_plots_and_mlflow_artifacts(flow_env, small_dataset, tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    from mvarchive.flows.rd_evaluation import EvaluateConfig, evaluate_dataset
    from mvarchive.flows.runtime import run_on_dask
    from mvarchive.tracking import TrackingConfig

    services, api_url = flow_env
    out = tmp_path / "eval"
    config = EvaluateConfig(dataset=small_dataset, codecs=["ldmic-fast:tiny"], baselines="jpeg,webp", anchor="jpeg",
                            out_dir=str(out), layout="group-folders")
    report = run_on_dask(evaluate_dataset, services, api_url, config=config,
                         tracking=TrackingConfig(mlflow_uri, "tests"), show_progress=False)
    assert {Path(p).name for p in report.files.values()} == OUTPUTS
    assert {p.name for p in out.iterdir()} == OUTPUTS
    saved = EvaluationResult.load(out / "results.json")
    assert [c.name for c in saved.curves] == ["ldmic-fast", "jpeg", "webp"]
    assert len(saved.curve("jpeg").points) == 8 and report.anchor_problem is None
    assert "akima" in (out / "bd_table.md").read_text() and "| webp |" in (out / "bd_table.md").read_text()

    client = MlflowClient(mlflow_uri)
    run = client.get_run(report.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["anchor"] == "jpeg" and run.data.params["bd_method"] == "akima"
    assert "bd_rate_psnr.webp" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "rd.jpeg.psnr")) == 8
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {f"evaluation/{name}" for name in OUTPUTS}


def test_cli_command_help():
    import typer
    from typer.testing import CliRunner

    from mvarchive.cli.app import main_options
    from mvarchive.cli.evaluation import eval_command

    app = typer.Typer()
    app.callback()(main_options)
    app.command("eval")(eval_command)
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--codec", "--checkpoint", "--baselines", "--anchor", "--out", "--json"):
        assert option in result.output
