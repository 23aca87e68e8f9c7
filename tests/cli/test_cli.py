"""The command line: JSON output, help, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mvarchive.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("archive", "restore", "info", "codecs", "train", "demo", "eval"):
        assert command in result.output


def test_codecs_json_lists_presets_views_and_parameter_counts(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "codecs", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {"ldmic", "ldmic-fast", "single-view-mbt2018-mean"} <= set(rows)
    ldmic = rows["ldmic"]
    assert ldmic["min_views"] == 2 and ldmic["max_views"] is None
    assert set(ldmic["presets"]) == {"paper", "tiny"}
    assert ldmic["presets"]["paper"]["parameters"]["encoder"] == 11_239_520
    assert ldmic["presets"]["paper"]["parameters"]["decoder"] == 15_242_531
    again = runner.invoke(app, ["--home", str(tmp_path), "codecs", "--json"])  # from the cache: the same answer
    assert json.loads(again.output) == json.loads(result.output) and list((tmp_path / "cache").glob("codecs-*.json"))


def test_info_json_reads_an_archive(tmp_path, sample_data):
    import numpy as np

    from mvarchive.storage import Location
    from tests.storage.test_archive import create, make_meta, record

    meta = make_meta(num_groups=2, shard_size=2)
    writer = create(Location(str(tmp_path / "a")), meta)
    rng = np.random.default_rng(0)
    writer.write_shard(0, [record(0, rng), record(1, rng)])
    result = runner.invoke(app, ["info", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["codec"]["name"] == "ldmic-fast"
    assert data["cameras"] == ["left", "right"]
    assert data["complete"] is True and data["group_names"] == ["g0", "g1"]
    assert data["summary"]["groups"] == 2


def test_errors_are_one_clear_line_with_exit_code_2(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "no archive" in result.output or "not a readable" in result.output


@pytest.mark.slow
def test_installed_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "mvarchive.cli", "codecs"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ldmic-fast" in result.stdout
