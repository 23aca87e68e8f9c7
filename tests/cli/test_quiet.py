"""A new user's first archive and restore print mvarchive's own lines only; -v shows the services'.

The installed `mvarchive` script on a fresh MVARCHIVE_HOME (so MLflow creates its database, which
it announces at INFO), reaching the test session's Prefect API and Dask cluster as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mvarchive.infra.log_levels import QUIET_ENVIRONMENT, quiet_environment, quiet_warnings

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
    """Start the script as a user whose shell sets none of the quiet variables (the test session's
    process may have them: its fixtures quiet the cluster), in a home of the test's own."""
    services, api_url = flow_env
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT and not k.startswith("MLFLOW_")}
    env.update({"PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": services.dask_address,
                "MLFLOW_DISABLE_TELEMETRY": "true"})

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([SCRIPT, *args], cwd=tmp_path, env={**env, "MVARCHIVE_HOME": str(tmp_path / "home")},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    return start


def lines(process: subprocess.Popen) -> list[str]:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"{process.args}: {output}"
    return output.splitlines()


@pytest.mark.slow
def test_archive_and_restore_are_quiet_and_verbose_shows_the_services(user, sample_data, tmp_path):
    arch = str(tmp_path / "arch")  # absolute: the user's cwd is not the workers'
    tiny = ("--codec", "ldmic-fast", "--preset", "tiny", "--untrained")
    archived = lines(user("archive", str(sample_data.stereo), arch, *tiny))
    # meanwhile the same archive with -v (its MLflow database exists now): Prefect's flow-run lines
    verbose_run = user("-v", "archive", str(sample_data.stereo), str(tmp_path / "arch-v"), *tiny)
    restored = lines(user("restore", arch, str(tmp_path / "out")))
    verbose = lines(verbose_run)

    for line in archived + restored:
        context = "\n".join(archived + restored)
        assert not NOISE.search(line), f"third-party line on a quiet command: {line!r}\n{context}"
    assert any("4 group(s) encoded" in line for line in archived)
    assert any("restored 8 images of 4 groups" in line for line in restored)
    assert len(list((tmp_path / "out").rglob("*.png"))) == 8

    text = "\n".join(verbose)
    assert re.search(r"INFO.*prefect\.flow_runs|prefect\.flow_runs.*INFO", text), text
    assert any("4 group(s) encoded" in line for line in verbose)


def test_quiet_environment_keeps_the_users_values_and_debug_keeps_prefects_console():
    environ = {"MLFLOW_LOGGING_LEVEL": "DEBUG"}
    added = quiet_environment(environ)
    assert environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG" and "MLFLOW_LOGGING_LEVEL" not in added
    assert environ["DASK_LOGGING__DISTRIBUTED"] == "critical"
    assert environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "CRITICAL"
    debugging: dict[str, str] = {}
    quiet_environment(debugging, debug=True)
    assert "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL" not in debugging and "PYTHONWARNINGS" in debugging


def test_only_the_named_warnings_are_ignored():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning, stacklevel=1)
        warnings.warn("`torch.jit.script` is deprecated, but as a UserWarning", UserWarning, stacklevel=1)
        warnings.warn("some other FutureWarning", FutureWarning, stacklevel=1)
    assert [(w.category, str(w.message)) for w in seen] == [
        (UserWarning, "`torch.jit.script` is deprecated, but as a UserWarning"),
        (FutureWarning, "some other FutureWarning"),
    ]
    # worker processes get the same filter through the environment
    script = "import warnings; warnings.warn('`torch.jit.script` is deprecated.', FutureWarning); print('done')"
    env = {**os.environ, "PYTHONWARNINGS": QUIET_ENVIRONMENT["PYTHONWARNINGS"]}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout == "done\n" and "FutureWarning" not in result.stderr
