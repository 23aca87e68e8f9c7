"""Schedule requests and the drift trigger, without a server: parsing, refusals, templates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mvarchive.scheduling.events import DRIFT_EVENT, drift_payload, drift_trigger
from mvarchive.scheduling.spec import ScheduleError, ScheduleSpec, describe_every, parse_every


@pytest.mark.parametrize("text, seconds, spelled", [("30s", 30, "30s"), ("10m", 600, "10m"), ("90m", 5400, "90m"),
                                                    ("1h", 3600, "1h"), ("2d", 172800, "2d"), ("120 s", 120, "2m")])
def test_every_round_trips(text: str, seconds: int, spelled: str) -> None:
    assert parse_every(text) == dt.timedelta(seconds=seconds)
    assert describe_every(parse_every(text)) == spelled


@pytest.mark.parametrize("text", ["0s", "1w", "h", "-5m", "1.5h", ""])
def test_every_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ScheduleError, match="--every"):
        parse_every(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "a/b"}, "schedule name"),
    ({"cron": "0 2 * * *", "every": dt.timedelta(hours=1)}, "exactly one of"),
    ({"every": None}, "exactly one of"),
    ({"model": None, "untrained": False}, "no model given"),
    ({"untrained": True}, "either --model or --untrained"),
    ({"shard_size": 0}, "--shard-size"),
])
def test_spec_refusals_name_the_option(kwargs: dict, message: str) -> None:
    base = {"name": "nightly", "source": "data", "dest": "arch", "model": "ck.pt", "every": dt.timedelta(hours=1)}
    with pytest.raises(ScheduleError, match=message):
        ScheduleSpec(**{**base, **kwargs})


def test_parameters_are_absolute_json_and_hold_no_storage_options(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ScheduleSpec("nightly", "data/cam", "s3://bucket/arch", model="models:/mvarchive-ldmic-fast@champion",
                        cron="0 2 * * *", timezone="Europe/Berlin")
    params = spec.parameters()
    assert params["source"] == str(tmp_path / "data" / "cam") and params["dest"] == "s3://bucket/arch"
    assert params["model"] == "models:/mvarchive-ldmic-fast@champion"  # resolved at each run, not at add
    assert set(params) == {
        "source", "dest", "model", "untrained", "codec", "preset", "layout", "shard_size", "schedule",
    }
    local = ScheduleSpec("n", "d", "a", model="ck/model.pt", every=dt.timedelta(minutes=5)).parameters()
    assert local["model"] == str(tmp_path / "ck" / "model.pt")
    schedule = spec.prefect_schedule()
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "Europe/Berlin")
    with pytest.raises(ScheduleError, match="invalid --cron"):
        ScheduleSpec("n", "d", "a", model="m", cron="0 2 * *  * * * *").prefect_schedule()
    with pytest.raises(ScheduleError, match="invalid --cron"):
        ScheduleSpec("n", "d", "a", model="m", cron="0 2 * * *", timezone="Mars/Olympus").prefect_schedule()


def test_drift_trigger_passes_only_the_payload_keys_a_flow_accepts() -> None:
    trigger = drift_trigger(["codec", "model", "dataset", "steps"])
    assert trigger.expect == {DRIFT_EVENT}
    assert trigger.parameters == {"codec": "{{ event.payload.codec }}", "model": "{{ event.payload.model }}",
                                  "dataset": "{{ event.payload.dataset }}"}
    payload = drift_payload("s3://b/arch", "ldmic-fast", {"bpp": 1}, model=None, dataset="s3://b/recent")
    assert payload["figures"] == {"bpp": 1.0} and payload["model"] == "" and payload["dataset"] == "s3://b/recent"
