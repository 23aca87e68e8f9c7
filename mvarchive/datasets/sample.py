"""Build two small multi-camera sample datasets from photographs bundled with scikit-image.

The demo, the docs and the end-to-end tests need real photographs in both
folder layouts without any download. ``stereo/`` holds the real Middlebury
motorcycle stereo pair plus synthetic pairs; ``rig/`` imitates a three-camera
rig. Synthetic views are overlapping crops of one photograph, which gives the
inter-view redundancy that multi-view codecs exploit. Building is
deterministic and idempotent: files that already exist are never rewritten.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["SampleDatasets", "build_sample_datasets"]

_CROP_H, _CROP_W = 256, 320  # crop size of every synthetic view (H x W)
_STEREO_SHIFT = 0.06  # right view shifted by 6% of the crop width (a baseline)
_RIG_SHIFTS = (0.0, 0.08, 0.16)  # cam0..cam2 horizontal offsets, fraction of crop width
_RIG_JITTER = (0, 2, 4)  # cam0..cam2 vertical offsets in pixels
_STEREO_PHOTOS = ("chelsea", "coffee", "rocket")
_RIG_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
_MOTORCYCLE_SCALE = 0.5
# Where the crop sits vertically (0 top, 0.5 centre); the astronaut's face is near the top.
_VERTICAL_ANCHOR = {"astronaut": 0.0}


@dataclass(frozen=True)
class SampleDatasets:
    """Where the sample datasets were written."""

    stereo: Path
    rig: Path
    provenance: Path


@dataclass(frozen=True)
class _View:
    """How one sample image is made: source photo, crop box (source pixels), then scale."""

    dataset: str
    group: str
    camera: str
    relpath: str
    source: str
    source_index: int | None
    crop: tuple[int, int, int, int]  # top, left, height, width
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        return (round(self.crop[2] * self.scale), round(self.crop[3] * self.scale))


def _source_loader() -> Callable[[str, int | None], np.ndarray]:
    """A loader for skimage photos that decodes each one once per build."""
    import skimage.data as skdata  # deferred: only the sample builder needs scikit-image

    cache: dict[tuple[str, int | None], np.ndarray] = {}

    def load(name: str, index: int | None) -> np.ndarray:
        key = (name, index)
        if key not in cache:
            out = getattr(skdata, name)()
            arr = out[index] if index is not None else out
            cache[key] = np.ascontiguousarray(arr, dtype=np.uint8)
        return cache[key]

    return load


def _plan(load: Callable[[str, int | None], np.ndarray]) -> list[_View]:
    """Every view of both datasets, in a fixed order."""
    views: list[_View] = []
    # The real stereo pair; drop one column so that halving gives an exact, even size.
    for index, camera in ((0, "left"), (1, "right")):
        h, w = load("stereo_motorcycle", index).shape[:2]
        crop = (0, 0, h - h % 4, w - w % 4)
        views.append(
            _View("stereo", "motorcycle", camera, f"motorcycle/{camera}.png",
                  "stereo_motorcycle", index, crop, _MOTORCYCLE_SCALE)
        )
    shift = round(_STEREO_SHIFT * _CROP_W)
    for photo in _STEREO_PHOTOS:
        h, w = load(photo, None).shape[:2]
        top = int((h - _CROP_H) * _VERTICAL_ANCHOR.get(photo, 0.5))
        left = (w - _CROP_W - shift) // 2
        for camera, dx in (("left", 0), ("right", shift)):
            views.append(
                _View("stereo", photo, camera, f"{photo}/{camera}.png", photo, None,
                      (top, left + dx, _CROP_H, _CROP_W), 1.0)
            )
    offsets = [round(f * _CROP_W) for f in _RIG_SHIFTS]
    for photo in _RIG_PHOTOS:
        h, w = load(photo, None).shape[:2]
        top = int((h - _CROP_H - max(_RIG_JITTER)) * _VERTICAL_ANCHOR.get(photo, 0.5))
        left = (w - _CROP_W - max(offsets)) // 2
        for cam, (dx, dy) in enumerate(zip(offsets, _RIG_JITTER)):
            views.append(
                _View("rig", photo, f"cam{cam}", f"cam{cam}/{photo}.png", photo, None,
                      (top + dy, left + dx, _CROP_H, _CROP_W), 1.0)
            )
    return views


def _render(view: _View, load: Callable[[str, int | None], np.ndarray]) -> bytes:
    """PNG bytes of one view (Pillow's PNG writer is deterministic)."""
    src = load(view.source, view.source_index)
    top, left, h, w = view.crop
    if top < 0 or left < 0 or top + h > src.shape[0] or left + w > src.shape[1]:
        raise ValueError(f"crop {view.crop} does not fit {view.source} of size {src.shape[:2]}")
    img = Image.fromarray(np.ascontiguousarray(src[top : top + h, left : left + w]))
    if view.scale != 1.0:
        out_h, out_w = view.size
        img = img.resize((out_w, out_h), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _provenance(views: list[_View], load: Callable[[str, int | None], np.ndarray]) -> bytes:
    """JSON record of how every file was made, so results on the sample can be traced."""
    datasets: dict[str, Any] = {
        "stereo": {"layout": "group-folders", "folder": "stereo", "groups": {}},
        "rig": {"layout": "camera-folders", "folder": "rig", "groups": {}},
    }
    for v in views:
        src_h, src_w = load(v.source, v.source_index).shape[:2]
        source = f"skimage.data.{v.source}()"
        if v.source_index is not None:
            source += f"[{v.source_index}]"
        top, left, h, w = v.crop
        datasets[v.dataset]["groups"].setdefault(v.group, {})[v.camera] = {
            "file": f"{v.dataset}/{v.relpath}",
            "source": source,
            "source_size": {"height": src_h, "width": src_w},
            "crop": {"top": top, "left": left, "height": h, "width": w},
            "scale": v.scale,
            "size": {"height": v.size[0], "width": v.size[1]},
        }
    doc = {
        "generator": "mvarchive.datasets.build_sample_datasets",
        "source_package": "scikit-image (photographs bundled with the package, no download)",
        "convention": "crop box is in source pixels (top, left, height, width) and is applied "
        "before scaling with Pillow LANCZOS; scale 1.0 means no resampling",
        "datasets": datasets,
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


_README = f"""\
mvarchive sample datasets
=========================

Built by mvarchive.datasets.build_sample_datasets() from photographs that ship
inside scikit-image (nothing is downloaded). provenance.json records, for every
file, the source photo, the crop box and the scale factor.

stereo/ - group-folders layout: stereo/<group>/left.png and right.png
  motorcycle: the real rectified stereo pair of the Middlebury 2014 benchmark
    (skimage.data.stereo_motorcycle), cropped to a multiple of 4 pixels and
    downscaled by {_MOTORCYCLE_SCALE} with Pillow LANCZOS so demos run quickly on a CPU.
  {", ".join(_STEREO_PHOTOS)}: synthetic pairs, two {_CROP_H}x{_CROP_W} (HxW) crops
    of one photo, the right crop shifted {round(_STEREO_SHIFT * _CROP_W)} px \
({_STEREO_SHIFT:.0%} of the crop width)
    to the right, like a horizontal baseline.

rig/ - camera-folders layout: rig/<camera>/<frame>.png
  cam0, cam1, cam2 each hold the frames {", ".join(_RIG_PHOTOS)}:
    {_CROP_H}x{_CROP_W} crops shifted right by \
{", ".join(f"{s:.0%}" for s in _RIG_SHIFTS)} of the crop width and
    down by {", ".join(map(str, _RIG_JITTER))} px, imitating three overlapping cameras.
    Four frames for three cameras keep the layout unambiguous for layout="auto".

Photographs: Middlebury College (motorcycle); NASA (astronaut, public domain);
Stefan van der Walt (chelsea, CC0); Rachel Michetti (coffee, CC0);
SpaceX (rocket, public domain).
"""


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` atomically; a crash never leaves a half-written file under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_sample_datasets(root: str | Path) -> SampleDatasets:
    """Write ``root/stereo``, ``root/rig``, ``root/provenance.json`` and ``root/README.txt``.

    Deterministic (the same scikit-image and Pillow give byte-identical files)
    and idempotent: existing files are left untouched and only missing ones are
    written, so a complete sample is never rewritten and nothing is deleted.
    """
    root = Path(root)
    result = SampleDatasets(
        stereo=root / "stereo", rig=root / "rig", provenance=root / "provenance.json"
    )
    load = _source_loader()
    # The expected file names do not depend on the photos, only on the constants,
    # so completeness is checked before any photo is decoded.
    names = [f"stereo/motorcycle/{c}.png" for c in ("left", "right")]
    names += [f"stereo/{p}/{c}.png" for p in _STEREO_PHOTOS for c in ("left", "right")]
    names += [f"rig/cam{i}/{p}.png" for p in _RIG_PHOTOS for i in range(len(_RIG_SHIFTS))]
    names += ["provenance.json", "README.txt"]
    if all((root / n).is_file() for n in names):
        return result

    views = _plan(load)
    for view in views:
        target = root / view.dataset / view.relpath
        if not target.is_file():
            _write_new(target, _render(view, load))
    if not result.provenance.is_file():
        _write_new(result.provenance, _provenance(views, load))
    readme = root / "README.txt"
    if not readme.is_file():
        _write_new(readme, _README.encode("utf-8"))
    return result
