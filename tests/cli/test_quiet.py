"""A new user's first archive and restore print mvarchive's own lines only; -v shows the services'.

The installed `mvarchive` script on a fresh MVARCHIVE_HOME (so MLflow creates its database, which
it announces at INFO), reaching the test session's Prefect API and Dask cluster as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mvarchive.infra.log_levels import QUIET_ENVIRONMENT

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "mvarchive")

#: Lines no quiet command may print: third-party log records (any format: "INFO name:",
#: "12:00:00.000 | INFO | prefect...", "... - distributed.nanny - WARNING - ..."), warnings, tracebacks.
NOISE = re.compile(
    r"\b(DEBUG|INFO|WARNING)\b.*\b(prefect|distributed|dask|mlflow|alembic|httpx|httpcore|uvicorn)\b"
    r"|\b(prefect|distributed|dask|mlflow|alembic|httpx|httpcore|uvicorn)[\w.]*\s*[-:|]\s*(DEBUG|INFO|WARNING)\b"
    r"|\w+Warning\b|Traceback"
)


@pytest.fixture
def user(flow_env, tmp_path):
    """Run the script as a user whose shell sets none of the quiet variables (the test session's
    process may have them: its fixtures quiet the cluster)."""
    services, api_url = flow_env
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT and not k.startswith("MLFLOW_")}
    env.update({"PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": services.dask_address,
                "MVARCHIVE_HOME": str(tmp_path / "home"), "MLFLOW_DISABLE_TELEMETRY": "true"})

    def run(*args: str) -> list[str]:
        result = subprocess.run([SCRIPT, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return (result.stdout + result.stderr).splitlines()

    return run


def test_archive_and_restore_are_quiet_and_verbose_shows_the_services(user, sample_data, tmp_path):
    arch = str(tmp_path / "arch")  # absolute: the user's cwd is not the workers'
    archived = user("archive", str(sample_data.stereo), arch, "--codec", "ldmic-fast", "--preset", "tiny",
                    "--untrained")
    restored = user("restore", arch, str(tmp_path / "out"))
    for line in archived + restored:
        assert not NOISE.search(line), f"third-party line on a quiet command: {line!r}\n" + "\n".join(archived + restored)
    assert any("4 group(s) encoded" in line for line in archived)
    assert any("restored 8 images of 4 groups" in line for line in restored)
    assert len(list((tmp_path / "out").rglob("*.png"))) == 8

    # -v: the same kind of run shows Prefect's flow-run lines and MLflow's database set-up
    (tmp_path / "home").rename(tmp_path / "home-before")
    verbose = user("-v", "archive", str(sample_data.stereo), str(tmp_path / "arch-v"), "--codec", "ldmic-fast", "--preset", "tiny",
                   "--untrained")
    text = "\n".join(verbose)
    assert re.search(r"INFO.*prefect\.flow_runs|prefect\.flow_runs.*INFO", text), text
    assert re.search(r"INFO.*Creating initial MLflow database tables", text), text
    assert any("4 group(s) encoded" in line for line in verbose)
