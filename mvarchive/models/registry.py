"""Codec checkpoints as versions of MLflow registered models ``mvarchive-<codec>``.

A version's source is the training run's ``checkpoint`` artifact folder (``runs:/RUN/checkpoint``,
a plain ``.pt`` file written by :func:`mvarchive.codecs.save_checkpoint`; registered by
:func:`mvarchive.models.publish.register_checkpoint`), so the UI links the
version to its run and any client that can read the run's artifacts (the SQLite store's folder,
or a tracking server proxying S3) can download it. Its tags say what it is: weights digest,
codec, preset, config, λ, datasets, RD point, training run.

``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` are accepted wherever a checkpoint is
(:func:`mvarchive.runtime.checkpoints.fetch_checkpoint_bytes` delegates here), and downloads are
cached under ``MVARCHIVE_HOME/models-cache/<weights digest>/`` so every Dask worker process on a
host downloads a version once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlflow takes seconds to import
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "CHAMPION", "MODEL_NAME_PREFIX", "ModelRegistryError", "ModelVersionRef", "checkpoint_path", "fetch_checkpoint",
    "is_model_uri", "registered_name", "registry_client", "resolve_model_uri",
    "version_tags",
]

MODEL_NAME_PREFIX = "mvarchive-"
CHAMPION = "champion"
CACHE_DIRNAME = "models-cache"
CHECKPOINT_ARTIFACT_DIR = "checkpoint"

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


class ModelRegistryError(ValueError):
    """A ``models:/`` URI names no model, version or alias, or a version lacks its checkpoint."""


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered version; ``uri`` is pinned (``models:/NAME/VERSION``) even when an alias
    was resolved, so an archive or a Dask task never follows an alias that moves later."""

    name: str
    version: str
    uri: str


def registered_name(codec: str) -> str:
    """The registered model that holds the versions of ``codec``: ``mvarchive-<codec>``."""
    return f"{MODEL_NAME_PREFIX}{codec}"


def is_model_uri(text: object) -> bool:
    """True for ``models:/…`` (registry) URIs, False for paths and other URLs."""
    return isinstance(text, str) and text.startswith("models:/")


def _default_tracking_uri() -> str:
    from mvarchive.infra.settings import ServicesConfig

    return ServicesConfig.from_env().resolved_mlflow_uri()


def _cache_root() -> Path:
    from mvarchive.infra.settings import ServicesConfig

    return ServicesConfig.from_env().home / CACHE_DIRNAME


def registry_client(tracking_uri: str | None = None) -> MlflowClient:
    """A client whose registry is the tracking store (no global MLflow state)."""
    from mlflow import MlflowClient

    from mvarchive.infra.mlflow_store import sqlite_store_path

    uri = tracking_uri or _default_tracking_uri()
    db = sqlite_store_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)  # a fresh home: the store is created on first use
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _parse(uri: str) -> tuple[str, str | None, str | None]:
    match = _URI.match(uri.strip())
    if not match:
        raise ModelRegistryError(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION or models:/NAME@ALIAS "
            f"(e.g. models:/{registered_name('ldmic-fast')}@{CHAMPION})")
    return match["name"], match["version"], match["alias"]


def _model_version(client: MlflowClient, uri: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    name, version, alias = _parse(uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none registered yet"
        raise ModelRegistryError(f"{uri}: no registered model {name!r} in {client.tracking_uri} "
                                 f"(models: {known})") from None
    if alias is not None:
        if alias not in model.aliases:
            have = ", ".join(f"@{a}" for a in sorted(model.aliases)) or "none"
            hint = (f"; promote a version with `mvarchive models promote {name} VERSION --dataset EVAL`"
                    if alias == CHAMPION else "")
            raise ModelRegistryError(f"{uri}: model {name!r} has no alias @{alias} (aliases: {have}){hint}")
        version = str(model.aliases[alias])
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise ModelRegistryError(f"{uri}: model {name!r} has no version {version}") from None


def resolve_model_uri(uri: str, tracking_uri: str | None = None) -> ModelVersionRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> the pinned version.

    Raises :class:`ModelRegistryError` (one line naming the model, version or alias) when
    the registry does not have it.
    """
    mv = _model_version(registry_client(tracking_uri), uri)
    return ModelVersionRef(mv.name, str(mv.version), f"models:/{mv.name}/{mv.version}")


def version_tags(uri: str, tracking_uri: str | None = None) -> dict[str, str]:
    """The tags of the version ``uri`` names (digest, codec, λ, RD point, ...)."""
    return dict(_model_version(registry_client(tracking_uri), uri).tags)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of a checkpoint file, as recorded in a version's ``checkpoint_sha256`` tag."""
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a tqdm bar on stderr for every download; a one-file fetch on each worker
    does not need one (unless the user asked for it through the variable)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def checkpoint_path(uri: str, tracking_uri: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local file holding the checkpoint of the version ``uri`` names.

    Downloaded once per weights digest into ``cache_dir`` (default
    ``MVARCHIVE_HOME/models-cache``) and checked against the version's SHA-256 tag; later
    calls (other worker processes too) read the cached file.
    """
    client = registry_client(tracking_uri)
    mv = _model_version(client, uri)
    where = f"models:/{mv.name}/{mv.version}"
    tags = dict(mv.tags)
    artifact, digest, sha = tags.get("checkpoint_artifact"), tags.get("weights_digest"), tags.get("checkpoint_sha256")
    if not (artifact and digest and sha and mv.run_id):
        raise ModelRegistryError(f"{where} was not registered by mvarchive (no checkpoint_artifact, weights_digest "
                                 "or checkpoint_sha256 tag, or no run)")
    folder = Path(cache_dir) if cache_dir is not None else _cache_root()
    target = folder / digest / Path(artifact).name
    if target.is_file() and sha256_hex(target.read_bytes()) == sha:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp, _no_progress_bar():
        local = Path(client.download_artifacts(mv.run_id, artifact, tmp))
        data = local.read_bytes()
        if sha256_hex(data) != sha:
            raise ModelRegistryError(f"{where}: downloaded checkpoint {artifact} has SHA-256 {sha256_hex(data)[:12]}, "
                                     f"the version records {sha[:12]}")
        os.replace(local, target)  # atomic: concurrent workers each write a whole file
    return target


def fetch_checkpoint(uri: str, tracking_uri: str | None = None) -> bytes:
    """The checkpoint bytes of the version ``uri`` names (cached; see :func:`checkpoint_path`)."""
    return checkpoint_path(uri, tracking_uri).read_bytes()


def ensure_registered_model(client: MlflowClient, codec: str) -> str:
    """``mvarchive-<codec>`` in the registry, created if missing; safe when several workers
    register versions at once (the loser of a creation race finds it created)."""
    from mlflow.exceptions import MlflowException

    name = registered_name(codec)
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=f"mvarchive {codec} checkpoints "
                                                             "(one version per training run; alias @champion)")
        except MlflowException:
            client.get_registered_model(name)  # created meanwhile by another worker, else the real error
    return name
