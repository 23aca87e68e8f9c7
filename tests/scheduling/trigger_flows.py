"""A tiny flow for the drift-trigger test: it records the parameters it was started with.

Importable by module path (``tests.scheduling.trigger_flows``) so that the served flow-run
process can load it; it writes to the file named by ``RECORD_ENV`` in the serving environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

from prefect import flow

RECORD_ENV = "MVARCHIVE_TEST_TRIGGER_RECORD"


@flow(name="record-drift")
def record_drift(
    codec: str, model: str, dataset: str, eval_dataset: str = "", triggered_by: str = ""
) -> dict[str, Any]:
    """Write the parameters this run received (from the event payload) and return them."""
    received = {"codec": codec, "model": model, "dataset": dataset, "eval_dataset": eval_dataset,
                "triggered_by": triggered_by}
    with open(os.environ[RECORD_ENV], "a", encoding="utf-8") as out:
        out.write(json.dumps(received) + "\n")
    return received
