"""Register a trained checkpoint as a new version of ``mvarchive-<codec>`` (see
:mod:`mvarchive.models.registry` for what a version is and how it is fetched).

Apart from :mod:`~mvarchive.models.registry` because it reads the checkpoint with the codecs,
while the registry client itself must stay importable by :mod:`mvarchive.codecs.checkpoint`
(which fetches ``models:/`` URIs through it) without a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mvarchive.codecs.checkpoint import codec_from_checkpoint, parse_checkpoint, weights_digest

from .registry import CHECKPOINT_ARTIFACT_DIR, ModelVersionRef, ensure_registered_model, registry_client, sha256_hex

__all__ = ["register_checkpoint"]


def _tag_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def register_checkpoint(
    checkpoint: str | Path, run_id: str, tracking_uri: str | None = None, *,
    rd_point: Mapping[str, float] | None = None, extra_tags: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> ModelVersionRef:
    """Log ``checkpoint`` (a local ``.pt``) as an artifact of run ``run_id`` and register it as
    a new version of ``mvarchive-<codec>`` (created on first use).

    Tags: ``weights_digest``, ``checkpoint_sha256``, ``checkpoint_artifact``, ``codec``,
    ``preset``, ``config`` (JSON), ``lmbda``, ``dataset``, ``steps`` (from the checkpoint),
    ``training_run_id``, the RD point (``bpp``, ``psnr``, ``ms_ssim``, ``mse``, ...) and
    ``extra_tags`` (e.g. ``eval_dataset``, ``parent_version``, ``triggered_by``).
    """
    path = Path(checkpoint)
    data = path.read_bytes()
    held = parse_checkpoint(data, str(path))
    model = codec_from_checkpoint(held, f"checkpoint {path}")
    extra = held.extra
    client = registry_client(tracking_uri)
    client.log_artifact(run_id, str(path), CHECKPOINT_ARTIFACT_DIR)
    name = ensure_registered_model(client, held.codec)
    tags: dict[str, Any] = {
        "weights_digest": weights_digest(model), "checkpoint_sha256": sha256_hex(data),
        "checkpoint_artifact": f"{CHECKPOINT_ARTIFACT_DIR}/{path.name}", "codec": held.codec,
        "preset": held.preset, "config": held.config, "training_run_id": run_id,
    }
    for key in ("lmbda", "dataset", "steps"):
        if extra.get(key) is not None:
            tags[key] = extra[key]
    for key, value in (rd_point or {}).items():
        tags[key] = value
    tags.update(extra_tags or {})
    mv = client.create_model_version(
        name, f"runs:/{run_id}/{CHECKPOINT_ARTIFACT_DIR}", run_id=run_id,
        tags={k: _tag_text(v) for k, v in tags.items() if v is not None}, description=description,
    )
    return ModelVersionRef(mv.name, str(mv.version), f"models:/{mv.name}/{mv.version}")
