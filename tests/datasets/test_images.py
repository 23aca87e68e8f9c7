"""Reading and writing single images: normalisation to RGB uint8 and clear errors."""

from __future__ import annotations

import io
import logging
import struct
import uuid
import zlib
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from mvarchive.datasets import DatasetError, load_image, save_image


def _rgb(h: int = 16, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _png16_rgb(arr16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, encoded by hand (Pillow cannot write one)."""
    h, w, _ = arr16.shape
    rows = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    arr = _rgb()
    url = str(tmp_path / "a" / "b" / "img.png")  # parent folders do not exist yet
    save_image(arr, url)
    out = load_image(url)
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".bmp", ".tif"])
def test_other_formats_follow_the_extension(tmp_path: Path, ext: str) -> None:
    arr = np.full((8, 8, 3), 120, dtype=np.uint8)
    url = str(tmp_path / f"img{ext}")
    save_image(arr, url)
    expected = {".jpg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}[ext]
    with Image.open(url) as img:
        assert img.format == expected
    assert np.abs(load_image(url).astype(int) - 120).max() <= 2


def test_save_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        save_image(np.zeros((4, 4, 3), dtype=np.float32), str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="shape"):
        save_image(np.zeros((4, 4, 5), dtype=np.uint8), str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="x.unknownext"):
        save_image(_rgb(), str(tmp_path / "x.unknownext"))
    assert not any(tmp_path.iterdir())


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nothere.png"):
        load_image(str(tmp_path / "nothere.png"))


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt_view.png"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match="corrupt_view.png"):
        load_image(str(path))


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    data = _png_bytes(_rgb(64, 64, seed=2))
    path = tmp_path / "truncated_view.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated_view.png"):
        load_image(str(path))


def test_16bit_grayscale_png_is_rejected(tmp_path: Path) -> None:
    arr16 = np.random.default_rng(3).integers(0, 65536, (8, 8), dtype=np.uint16)
    path = tmp_path / "deep_gray.png"
    Image.fromarray(arr16).save(path)  # Pillow writes mode I;16 as a 16-bit PNG
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")
    with pytest.raises(DatasetError, match="16-bit images are not supported") as err:
        load_image(str(path))
    assert "deep_gray.png" in str(err.value)
    assert "convert to 8-bit first" in str(err.value)


def test_16bit_rgb_png_is_rejected_although_pillow_opens_it_as_rgb(tmp_path: Path) -> None:
    arr16 = np.random.default_rng(4).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    path = tmp_path / "deep_rgb.png"
    path.write_bytes(_png16_rgb(arr16))
    with Image.open(path) as img:
        assert img.mode == "RGB"  # the true depth is only visible before decoding
    with pytest.raises(DatasetError, match="deep_rgb.png.*16-bit"):
        load_image(str(path))


def test_float_tiff_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(path)
    with pytest.raises(DatasetError, match="float.tif.*16-bit"):
        load_image(str(path))


@pytest.mark.parametrize(
    ("mode", "ext", "note"),
    [
        ("L", ".png", "grayscale"),
        ("LA", ".png", "alpha channel was dropped"),
        ("RGBA", ".png", "alpha channel was dropped"),
        ("P", ".png", "palette"),
        ("CMYK", ".tif", "CMYK"),
        ("1", ".png", "black-and-white"),
    ],
)
def test_other_8bit_modes_are_converted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, ext: str, note: str
) -> None:
    rgb = _rgb(12, 10, seed=5)
    path = tmp_path / f"view_{mode}{ext}"
    Image.fromarray(rgb).convert(mode).save(path)
    with caplog.at_level(logging.WARNING, logger="mvarchive.datasets"):
        out = load_image(str(path))
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8
    messages = [r.getMessage() for r in caplog.records if r.name == "mvarchive.datasets"]
    assert len(messages) == 1
    assert path.name in messages[0] and note in messages[0]


def test_grayscale_repeats_the_channel(tmp_path: Path) -> None:
    gray = np.random.default_rng(6).integers(0, 256, (5, 9), dtype=np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    out = load_image(str(path))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_keeps_colour_and_drops_alpha(tmp_path: Path) -> None:
    rgba = np.random.default_rng(7).integers(0, 256, (6, 6, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    np.testing.assert_array_equal(load_image(str(path)), rgba[..., :3])


def test_rgb_png_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "plain.png"
    save_image(_rgb(), str(path))
    with caplog.at_level(logging.DEBUG, logger="mvarchive.datasets"):
        load_image(str(path))
    assert not [r for r in caplog.records if r.name == "mvarchive.datasets"]


def test_round_trip_through_memory_filesystem() -> None:
    prefix = f"/mvarchive-test-images-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    try:
        arr = _rgb(9, 11, seed=8)
        url = f"memory://{prefix}/x/view.png"
        save_image(arr, url)
        np.testing.assert_array_equal(load_image(url), arr)
        with pytest.raises(DatasetError, match="absent.png"):
            load_image(f"memory://{prefix}/absent.png")
    finally:
        if fs.exists(prefix):
            fs.rm(prefix, recursive=True)
    assert not fs.exists(prefix)
