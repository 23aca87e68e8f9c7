"""Drift verdicts round-trip through a real (SQLite) MLflow store."""

from mlflow import MlflowClient

from mvarchive.infra.mlflow_store import ensure_experiment
from mvarchive.monitoring import RDFigures, assess_drift
from mvarchive.monitoring.history import ARCHIVE_TAG, DIGEST_TAG, previous_exceeded, record_decision

REFERENCE = RDFigures.from_psnr(0.4, 30.0)
BAD = RDFigures.from_psnr(1.2, 24.0)


def _run(client, experiment, archive, digest):
    return client.create_run(experiment, tags={ARCHIVE_TAG: archive, DIGEST_TAG: digest}).info.run_id


def test_streak_is_read_back_per_archive_and_model(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = ensure_experiment(client, "drift", (tmp_path / "artifacts").as_uri())
    archive = "file:///data/arch's"  # a quote in the URL must not break the filter

    first = _run(client, experiment, archive, "d1")
    history = previous_exceeded(client, experiment, archive, "d1", exclude_run=first)
    assert history == []
    decision = assess_drift(BAD, REFERENCE, 1024, history)
    record_decision(client, first, decision)
    assert not decision.triggered

    _run(client, experiment, archive, "other-model")  # another model's runs do not count
    _run(client, experiment, "file:///other", "d1")  # nor another archive's
    second = _run(client, experiment, archive, "d1")
    history = previous_exceeded(client, experiment, archive, "d1", exclude_run=second)
    assert history == [True]
    decision = assess_drift(BAD, REFERENCE, 1024, history)
    record_decision(client, second, decision)
    assert decision.triggered

    tags = client.get_run(second).data.tags
    assert tags["mvarchive.drift.triggered"] == "true" and "2 runs in a row" in tags["mvarchive.drift.reason"]
    assert client.get_run(second).data.metrics["drift/streak"] == 2.0
