"""What ``mvarchive codecs`` lists, without importing torch when nothing changed.

Listing codecs needs the registry, which imports torch and CompressAI (several seconds on a
small machine) and builds every preset to count its parameters. The answer only changes
when the codec sources or the torch/CompressAI versions change, so it is kept in
``MVARCHIVE_HOME/cache/codecs-<digest>.json``, the digest taken over exactly those inputs.
A stale or unreadable cache is rebuilt, never trusted. (It lives outside ``mvarchive.codecs``:
importing anything in that package imports every codec.)
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["build_catalog", "catalog", "catalog_digest"]

_PACKAGES = ("torch", "compressai", "mvarchive")

#: The sources of ``mvarchive.codecs``, found without importing the package.
CODEC_SOURCES = Path(__file__).resolve().parents[1] / "codecs"


def catalog_digest(codec_sources: Path = CODEC_SOURCES) -> str:
    """SHA-256 over the codec package's sources and the versions of the packages they build on."""
    digest = hashlib.sha256()
    for package in _PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "none"
        digest.update(f"{package}={version}\n".encode())
    for path in sorted(codec_sources.rglob("*.py")):
        digest.update(path.relative_to(codec_sources).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_catalog() -> list[dict[str, Any]]:
    """Every registered codec: id, description, accepted views, and per preset its config and
    parameter counts (encoder, decoder, total). Imports the registry."""
    from dataclasses import asdict

    from mvarchive.codecs import list_codecs

    from .codec_counts import parameter_counts

    rows = []
    for spec in list_codecs():
        presets = {preset: {"config": asdict(spec.presets[preset]), "parameters": parameter_counts(spec.name, preset)}
                   for preset in spec.presets}
        rows.append({"name": spec.name, "id": spec.codec_id, "description": spec.description,
                     "min_views": spec.min_views, "max_views": spec.max_views, "views": str(spec.views),
                     "presets": presets})
    return rows


def catalog(cache_dir: Path | None) -> list[dict[str, Any]]:
    """The catalog, from ``cache_dir`` when it was built from these very sources, else built
    (and cached there when ``cache_dir`` is given and writable)."""
    if cache_dir is None:
        return build_catalog()
    path = cache_dir / f"codecs-{catalog_digest()[:16]}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rows, list) and all(isinstance(r, dict) and {"presets", "views"} <= set(r) for r in rows):
            return rows
    except (OSError, ValueError):
        pass
    rows = build_catalog()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for old in cache_dir.glob("codecs-*.json"):  # one cache file: older sources' answers go
            old.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: answer anyway, just slower next time
    return rows
