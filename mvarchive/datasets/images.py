"""Read and write single 8-bit RGB images on any fsspec filesystem.

Everything downstream (codecs, metrics) assumes ``(H, W, 3) uint8`` arrays, so
this module is the one place where other pixel formats are normalised or
refused, with a message that names the file.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import uuid
from typing import Any

import fsspec
import numpy as np
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from PIL import Image, UnidentifiedImageError

from mvarchive.datasets.errors import DatasetError

__all__ = ["load_image", "save_image", "IMAGE_EXTENSIONS"]

_LOG_NAME = "mvarchive.datasets"

#: File extensions (lower case, with dot) treated as images when scanning folders.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

#: Largest view (pixels) read by default: a learned codec's activations take ~200 bytes per
#: pixel, so a bigger image would exhaust a worker's memory instead of failing clearly.
MAX_VIEW_PIXELS = 16_000_000

# Modes that carry more than 8 bits per sample; refused rather than silently reduced.
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "F;32")

# Human-readable notes logged when a mode is converted to RGB.
_CONVERSIONS = {
    "L": "8-bit grayscale (L) converted to RGB by repeating the channel",
    "LA": "grayscale with alpha (LA) converted to RGB; the alpha channel was dropped",
    "La": "grayscale with alpha (La) converted to RGB; the alpha channel was dropped",
    "RGBA": "RGBA converted to RGB; the alpha channel was dropped",
    "RGBa": "RGBa converted to RGB; the alpha channel was dropped",
    "RGBX": "RGBX converted to RGB; the padding channel was dropped",
    "P": "palette image (P) converted to RGB",
    "PA": "palette image with alpha (PA) converted to RGB; the alpha channel was dropped",
    "CMYK": "CMYK converted to RGB without a colour profile (colours may shift)",
    "1": "1-bit black-and-white image converted to RGB",
    "YCbCr": "YCbCr converted to RGB",
}


def _raw_modes(img: Image.Image) -> list[str]:
    """Raw (on-disk) pixel layouts of an unloaded image, e.g. ``"RGB;16B"``.

    Pillow opens a 16-bit RGB PNG as mode ``"RGB"`` and only reduces it to 8
    bits while decoding; the tile descriptors still tell the true depth.
    """
    modes: list[str] = []
    for tile in getattr(img, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, str):
            modes.append(args)
        elif isinstance(args, tuple) and args and isinstance(args[0], str):
            modes.append(args[0])
    return modes


def _high_depth_reason(img: Image.Image) -> str | None:
    """Why ``img`` is deeper than 8 bits per sample, or ``None`` if it is not."""
    if img.mode in _HIGH_DEPTH_MODES or img.mode.startswith("I;16"):
        return f"mode {img.mode}"
    for raw in _raw_modes(img):
        if ";16" in raw or ";32" in raw or raw.startswith(("I;16", "F;")):
            return f"mode {img.mode} stored as {raw}"
    return None


def load_image(
    url: str, storage_options: dict[str, Any] | None = None, max_pixels: int | None = MAX_VIEW_PIXELS
) -> np.ndarray:
    """Read ``url`` as an ``(H, W, 3) uint8`` RGB array.

    Grayscale, alpha, palette and CMYK images are converted (with a logged
    warning, because the conversion changes what gets archived); 16-bit and
    float images are refused because reducing them would silently lose data.
    Any unreadable, corrupt or truncated file raises :class:`DatasetError`
    naming ``url``.
    """
    opts = dict(storage_options or {})
    try:
        with fsspec.open(url, "rb", **opts) as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise DatasetError(f"image file not found: {url}") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image file {url}: {exc}") from exc

    if not data:
        raise DatasetError(f"{url}: empty file (0 bytes)")
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            raise DatasetError(
                f"{url}: {width}x{height} image has {width * height / 1e6:.1f} MP, over the "
                f"{max_pixels / 1e6:.1f} MP limit per view (raise it with --max-pixels if the workers have the memory)"
            )
        reason = _high_depth_reason(img)
        if reason is not None:
            raise DatasetError(
                f"{url}: 16-bit images are not supported ({reason}): convert to 8-bit first"
            )
        img.load()
    except DatasetError:
        raise
    except UnidentifiedImageError as exc:
        raise DatasetError(f"{url}: not a readable image (unknown or corrupt format)") from exc
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"{url}: image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DatasetError(f"{url}: corrupt or truncated image: {exc}") from exc

    if img.mode != "RGB":
        note = _CONVERSIONS.get(img.mode, f"mode {img.mode} converted to RGB")
        if img.mode == "P" and "transparency" in img.info:
            note += "; transparency was dropped"
        try:
            img = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{url}: cannot convert mode {img.mode} to RGB: {exc}") from exc
        logging.getLogger(_LOG_NAME).warning("%s: %s", url, note)

    array = np.array(img, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise DatasetError(f"{url}: decoded to unexpected shape {array.shape}, expected (H, W, 3)")
    return array


def _format_for(url: str) -> str:
    """Pillow format name implied by the extension of ``url``."""
    ext = posixpath.splitext(url.split("?", 1)[0])[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if not ext or fmt is None or not Image.SAVE.get(fmt):
        raise ValueError(
            f"cannot choose an image format for {url!r}: use one of "
            + ", ".join(IMAGE_EXTENSIONS)
        )
    return fmt


def save_image(
    array: np.ndarray, url: str, storage_options: dict[str, Any] | None = None, *, exclusive: bool = False
) -> None:
    """Write a uint8 image to ``url`` in the format implied by its extension.

    PNG is recommended because it is lossless; JPEG is written at quality 95
    and WebP losslessly. The file is encoded in memory first so a failed
    encode never leaves a partial file behind; local files are written under a
    temporary name and renamed, so a killed write never leaves a torn image. Parent
    folders are created for local paths (object stores need none).

    ``exclusive`` refuses to replace an existing file (``FileExistsError``) unless it
    already holds exactly these bytes (a retried task rewriting its own output).
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"cannot save {url}: expected a uint8 array, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise ValueError(
            f"cannot save {url}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    fmt = _format_for(url)
    img = Image.fromarray(np.ascontiguousarray(arr))
    params: dict[str, Any] = {}
    if fmt == "JPEG":
        if img.mode == "RGBA":
            raise ValueError(f"cannot save {url}: JPEG has no alpha channel")
        params["quality"] = 95
    elif fmt == "WEBP":
        params["lossless"] = True
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)

    data = buf.getvalue()
    fs, path = url_to_fs(url, **dict(storage_options or {}))
    if exclusive and fs.exists(path):
        if fs.cat_file(path) == data:
            return
        raise FileExistsError(f"{url} exists; refusing to overwrite it")
    if isinstance(fs, LocalFileSystem):
        parent = posixpath.dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        try:
            if exclusive:
                os.link(tmp, path)  # fails if the file appeared meanwhile: never replaces it
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    with fs.open(path, "wb") as fh:
        fh.write(data)
