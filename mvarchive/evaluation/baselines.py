"""Classical codecs as rate-distortion baselines, behind one small interface.

Every baseline has a stable ``name``, says whether it can run here (:meth:`Baseline.available`
returns the reason either way), and has a sweep of settings (``settings``, from low to high rate)
chosen to span roughly 0.05-1.5 bpp on natural 8-bit RGB photographs. ``encode`` returns the
bytes a user would store (headers and container included) and ``decode`` reads them back to
uint8 RGB with no side information.

Per-view baselines take and return one ``(H, W, 3)`` view. ``joint`` baselines (``x265-joint``)
take and return a whole group ``(K, H, W, 3)``: the K views are one short video.

Where the codecs come from (``scripts/install-system-deps.sh`` installs the Debian packages):

=============  ============================================  =====================================
name           implementation                                setting
=============  ============================================  =====================================
jpeg           Pillow (libjpeg-turbo), 4:4:4, optimized       quality 1-100
               Huffman tables
webp           Pillow (libwebp), lossy, method 4. Lossy WebP  quality 0-100
               is always 4:2:0 (the format has no 4:4:4), so
               on saturated colour edges it stays below
               40 dB even at quality 100
jpeg2000       Pillow (openjpeg), 9/7 wavelet, colour         target bits per pixel (one layer,
               transform, raw codestream (no JP2 box)         ``quality_mode="rates"``)
avif           Pillow's AVIF plugin (libavif/aom), 4:4:4,     quality 0-100 (libavif scale)
               full range, speed 6; else ``avifenc``/
               ``avifdec`` (Debian ``libavif-bin``)
jxl            ``cjxl``/``djxl`` (Debian ``libjxl-tools``),   butteraugli distance (lower = better)
               effort 7
x265-intra     ``ffmpeg`` with libx265 (Debian ``ffmpeg``),   constant QP
               4:4:4, every view one intra picture (close
               to BPG, which the multi-view papers use)
x265-joint     as x265-intra, the K views of a group as one   constant QP of P pictures (the I
               video: first view intra, the others P          picture gets x265's ipratio offset)
               pictures predicted from earlier views (low
               delay P, no B-frames, no scene cuts)
=============  ============================================  =====================================

Colour conversion of the HEVC baselines: the RGB views are converted to full-range 8-bit
YCbCr 4:4:4 with the BT.601 matrix of JPEG/JFIF here in numpy (the stream signals
``color_range=pc``, ``colorspace=bt470bg``), and decoded YCbCr is converted back with the exact
inverse. Rounding to 8 bits in YCbCr loses a little even with lossless coding (about 50 dB PSNR
on photographs; see :func:`rgb_to_ycbcr`), so the x265 curves saturate there. Doing the
conversion here instead of in ffmpeg avoids swscale's default limited range, which loses more.

All baselines are run single-threaded where the tool allows it (Pillow AVIF ``max_threads=1``,
``cjxl``/``djxl`` ``--num_threads=1``, x265 ``pools=1:frame-threads=1``), so times per
megapixel compare codecs, not core counts. Times of tool-based baselines include starting the
tool process (tens of milliseconds), which dominates for small images.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, features

__all__ = [
    "BASELINE_NAMES",
    "Availability",
    "Baseline",
    "BaselineError",
    "get_baseline",
    "list_baselines",
    "parse_baselines",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]

TOOL_TIMEOUT_S = 300.0  # one tool call; generous for large images on a loaded machine
INSTALL_HINT = "run scripts/install-system-deps.sh"


class BaselineError(RuntimeError):
    """A baseline tool failed or produced something unreadable."""


@dataclass(frozen=True)
class Availability:
    """Whether a baseline can run here; ``reason`` names what it uses or what is missing."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def _check_view(view: np.ndarray, what: str) -> np.ndarray:
    if view.ndim != 3 or view.shape[2] != 3 or view.dtype != np.uint8:
        raise ValueError(f"{what}: expected an (H, W, 3) uint8 view, got {view.dtype} {view.shape}")
    return np.ascontiguousarray(view)


def _check_group(views: np.ndarray, what: str) -> np.ndarray:
    if views.ndim != 4 or views.shape[3] != 3 or views.dtype != np.uint8:
        raise ValueError(f"{what}: expected a (K, H, W, 3) uint8 group, got {views.dtype} {views.shape}")
    return np.ascontiguousarray(views)


def _run_tool(args: Sequence[str], what: str, stdin: bytes | None = None, timeout: float = TOOL_TIMEOUT_S) -> bytes:
    """Run an external tool; any failure becomes one :class:`BaselineError` naming the tool."""
    try:
        proc = subprocess.run(list(args), input=stdin, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BaselineError(f"{what}: {args[0]} is not installed; {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise BaselineError(f"{what}: {args[0]} took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-600:]
        raise BaselineError(f"{what}: {Path(args[0]).name} exited with status {proc.returncode}: "
                            f"{tail or 'no message'}")
    return proc.stdout


def _pillow_decode(data: bytes, what: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise BaselineError(f"{what}: cannot decode {len(data)} bytes: {exc}") from exc


def _pillow_encode(view: np.ndarray, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(view, "RGB").save(buf, format=fmt, **options)
    return buf.getvalue()


class Baseline(ABC):
    """One classical codec with a sweep of settings."""

    name: ClassVar[str]
    description: ClassVar[str]
    setting_name: ClassVar[str]
    settings: ClassVar[tuple[float, ...]]  # from low to high rate, spanning ~0.05-1.5 bpp
    high_quality: ClassVar[float]  # near-transparent setting (> 40 dB on photographs; WebP see below)
    joint: ClassVar[bool] = False  # True: encode/decode a whole (K, H, W, 3) group

    @abstractmethod
    def available(self) -> Availability:
        """Whether the codec can run here, and what it uses or what is missing."""

    @abstractmethod
    def encode(self, image: np.ndarray, setting: float) -> bytes:
        """Encode one view (or, if ``joint``, a group) at ``setting``."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode bytes written by :meth:`encode` back to uint8 RGB."""

    def per_view_bytes(self, data: bytes, num_views: int) -> list[int] | None:
        """For joint baselines: the bytes of each view, when the stream can be split."""
        return None

    def require(self) -> None:
        """Raise :class:`BaselineError` with the reason when the codec cannot run here."""
        state = self.available()
        if not state:
            raise BaselineError(f"baseline {self.name!r} is unavailable: {state.reason}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# --- Pillow codecs ------------------------------------------------------------------------------


def _pillow_feature(feature: str, what: str) -> Availability:
    try:
        ok = bool(features.check(feature))
    except ValueError:
        ok = False
    if ok:
        version = features.version(feature)
        return Availability(True, f"Pillow {what}" + (f" {version}" if version else ""))
    return Availability(False, f"this Pillow build has no {what} support (features.check({feature!r}) is False)")


class JpegBaseline(Baseline):
    name = "jpeg"
    description = "JPEG 4:4:4 (Pillow/libjpeg-turbo, optimized Huffman tables)"
    setting_name = "quality"
    settings = (2.0, 5.0, 10.0, 20.0, 35.0, 55.0, 75.0, 90.0)
    high_quality = 98.0

    def available(self) -> Availability:
        return _pillow_feature("jpg", "JPEG")

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        view = _check_view(image, self.name)
        return _pillow_encode(view, "JPEG", quality=int(round(setting)), subsampling=0, optimize=True)

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data, self.name)


class WebpBaseline(Baseline):
    name = "webp"
    description = "WebP lossy (Pillow/libwebp, method 4; the format is 4:2:0 only)"
    setting_name = "quality"
    settings = (0.0, 5.0, 20.0, 40.0, 60.0, 75.0, 88.0, 96.0)
    high_quality = 100.0

    def available(self) -> Availability:
        return _pillow_feature("webp", "WebP")

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        view = _check_view(image, self.name)
        return _pillow_encode(view, "WEBP", quality=int(round(setting)), method=4)

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data, self.name)


class Jpeg2000Baseline(Baseline):
    name = "jpeg2000"
    description = "JPEG 2000 (Pillow/openjpeg, 9/7 wavelet, colour transform, raw codestream)"
    setting_name = "target bpp"
    settings = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 1.5, 2.2)
    high_quality = 8.0

    def available(self) -> Availability:
        return _pillow_feature("jpg_2000", "JPEG 2000 (openjpeg)")

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        view = _check_view(image, self.name)
        if setting <= 0:
            raise ValueError(f"{self.name}: target bpp must be > 0, got {setting}")
        ratio = 24.0 / float(setting)  # openjpeg's "rates" are compression ratios against raw samples
        return _pillow_encode(view, "JPEG2000", quality_mode="rates", quality_layers=[ratio],
                              irreversible=True, mct=1, no_jp2=True)

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data, self.name)


# --- AVIF: Pillow if it has AVIF, else avifenc/avifdec -----------------------------------------------


class AvifBaseline(Baseline):
    name = "avif"
    description = "AVIF 4:4:4 full range (libavif/aom, speed 6)"
    setting_name = "quality"
    settings = (3.0, 15.0, 30.0, 45.0, 58.0, 70.0, 80.0, 90.0)
    high_quality = 95.0
    speed = 6

    def __init__(self, backend: str = "auto") -> None:
        if backend not in ("auto", "pillow", "avifenc"):
            raise ValueError(f"AVIF backend must be auto, pillow or avifenc, got {backend!r}")
        self.backend = backend

    def _backend(self) -> tuple[str | None, str]:
        pillow = _pillow_feature("avif", "AVIF")
        tools = [t for t in ("avifenc", "avifdec") if shutil.which(t) is None]
        if self.backend in ("auto", "pillow") and pillow:
            return "pillow", pillow.reason
        if self.backend in ("auto", "avifenc") and not tools:
            return "avifenc", "avifenc/avifdec " + _tool_version("avifenc", "--version")
        missing = []
        if self.backend in ("auto", "pillow"):
            missing.append(pillow.reason)
        if self.backend in ("auto", "avifenc"):
            missing.append(f"{' and '.join(tools)} not found (Debian package libavif-bin; {INSTALL_HINT})")
        return None, "; ".join(missing)

    def available(self) -> Availability:
        backend, reason = self._backend()
        return Availability(backend is not None, reason)

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        view = _check_view(image, self.name)
        backend, reason = self._backend()
        quality = int(round(setting))
        if backend == "pillow":
            return _pillow_encode(view, "AVIF", quality=quality, subsampling="4:4:4", speed=self.speed,
                                  range="full", max_threads=1)
        if backend == "avifenc":
            # libavif maps quality q to the quantizer ((100 - q) * 63 + 50) / 100; older avifenc
            # releases (Debian 12 has 0.11) only take the quantizer.
            quantizer = str(((100 - quality) * 63 + 50) // 100)
            with tempfile.TemporaryDirectory(prefix="mvarchive-avif-") as tmp:
                src, dst = Path(tmp) / "in.png", Path(tmp) / "out.avif"
                Image.fromarray(view, "RGB").save(src, compress_level=0)
                _run_tool(["avifenc", "--yuv", "444", "--range", "full", "--min", quantizer, "--max", quantizer,
                           "--speed", str(self.speed), "--jobs", "1", str(src), str(dst)], self.name)
                return dst.read_bytes()
        raise BaselineError(f"baseline {self.name!r} is unavailable: {reason}")

    def decode(self, data: bytes) -> np.ndarray:
        backend, reason = self._backend()
        if backend == "pillow":
            return _pillow_decode(data, self.name)
        if backend == "avifenc":
            with tempfile.TemporaryDirectory(prefix="mvarchive-avif-") as tmp:
                src, dst = Path(tmp) / "in.avif", Path(tmp) / "out.png"
                src.write_bytes(data)
                _run_tool(["avifdec", "--jobs", "1", str(src), str(dst)], self.name)
                return _pillow_decode(dst.read_bytes(), self.name)
        raise BaselineError(f"baseline {self.name!r} is unavailable: {reason}")


# --- JPEG XL: cjxl/djxl --------------------------------------------------------------------------


@cache
def _tool_version(tool: str, flag: str) -> str:
    """First version-looking token a tool prints, or '' (for availability messages only)."""
    try:
        proc = subprocess.run([tool, flag], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.search(rb"v?(\d+\.\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    return match.group(1).decode() if match else ""


class JxlBaseline(Baseline):
    name = "jxl"
    description = "JPEG XL (cjxl/djxl, effort 7, VarDCT)"
    setting_name = "distance"
    settings = (15.0, 9.0, 6.0, 4.0, 2.8, 1.9, 1.2, 0.7)
    high_quality = 0.15
    effort = 7

    def available(self) -> Availability:
        missing = [t for t in ("cjxl", "djxl") if shutil.which(t) is None]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not found "
                                       f"(Debian package libjxl-tools; {INSTALL_HINT})")
        return Availability(True, f"cjxl/djxl {_tool_version('cjxl', '--version')}".strip())

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        view = _check_view(image, self.name)
        if setting <= 0:
            raise ValueError(f"{self.name}: distance must be > 0 (0 is lossless), got {setting}")
        with tempfile.TemporaryDirectory(prefix="mvarchive-jxl-") as tmp:
            src, dst = Path(tmp) / "in.ppm", Path(tmp) / "out.jxl"
            Image.fromarray(view, "RGB").save(src)
            _run_tool(["cjxl", str(src), str(dst), f"--distance={setting:g}", f"--effort={self.effort}",
                       "--num_threads=1"], self.name)
            return dst.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="mvarchive-jxl-") as tmp:
            src, dst = Path(tmp) / "in.jxl", Path(tmp) / "out.ppm"
            src.write_bytes(data)
            _run_tool(["djxl", str(src), str(dst), "--num_threads=1", "--bits_per_sample=8"], self.name)
            return _pillow_decode(dst.read_bytes(), self.name)


# --- HEVC with x265 through ffmpeg ---------------------------------------------------------------

# Full-range BT.601 (JPEG/JFIF) RGB -> YCbCr; rows give Y, Cb, Cr.
_RGB_TO_YCC = np.array([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
])
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> uint8 full-range BT.601 YCbCr (..., 3), rounded.

    The 8-bit rounding here is the only loss of :func:`ycbcr_to_rgb` ``∘`` this function: about
    50 dB PSNR on photographs, so HEVC curves cannot go above that.
    """
    ycc = rgb.astype(np.float64) @ _RGB_TO_YCC.T
    ycc[..., 1:] += 128.0
    return np.clip(np.rint(ycc), 0, 255).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (uint8 in, uint8 out, rounded and clipped)."""
    values = ycc.astype(np.float64)
    values[..., 1:] -= 128.0
    return np.clip(np.rint(values @ _YCC_TO_RGB.T), 0, 255).astype(np.uint8)


@cache
def _ffmpeg_x265() -> Availability:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return Availability(False, f"ffmpeg not found (Debian package ffmpeg; {INSTALL_HINT})")
    try:
        proc = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Availability(False, f"ffmpeg does not run: {exc}")
    if b"libx265" not in proc.stdout:
        return Availability(False, "this ffmpeg has no libx265 encoder (Debian's ffmpeg package has it)")
    return Availability(True, f"ffmpeg {_tool_version('ffmpeg', '-version')} with libx265")


def _hevc_frame_sizes(data: bytes) -> list[int]:
    """Split an Annex B HEVC stream into the bytes of each picture.

    Parameter sets and prefix SEI count toward the picture that follows them; a picture
    starts at a VCL NAL unit whose ``first_slice_segment_in_pic_flag`` is set. The sizes sum
    to ``len(data)``.
    """
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    if not starts:
        return []
    bounds = [0, *starts[1:], len(data)]
    sizes: list[int] = []
    pending = 0
    for begin, end, code in zip(bounds[:-1], bounds[1:], starts):
        chunk = end - begin
        header = code + 3
        nal_type = (data[header] >> 1) & 0x3F if header < len(data) else 63
        first_slice = header + 2 < len(data) and bool(data[header + 2] & 0x80)
        if nal_type < 32 and (first_slice or not sizes):
            sizes.append(pending + chunk)
            pending = 0
        elif nal_type < 32:
            sizes[-1] += pending + chunk
            pending = 0
        else:
            pending += chunk
    if sizes:
        sizes[-1] += pending
    return sizes


def _read_y4m(data: bytes, what: str) -> np.ndarray:
    """Frames of a YUV4MPEG2 4:4:4 stream as (N, H, W, 3) uint8 YCbCr."""
    end = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2") or end < 0:
        raise BaselineError(f"{what}: ffmpeg did not write a Y4M stream ({len(data)} bytes)")
    tokens = data[:end].split()[1:]
    params = {t[:1]: t[1:] for t in tokens}
    width, height = int(params[b"W"]), int(params[b"H"])
    chroma = params.get(b"C", b"420")
    if not chroma.startswith(b"444"):
        raise BaselineError(f"{what}: expected 4:4:4 frames from ffmpeg, got C{chroma.decode()}")
    plane = width * height
    frames = []
    pos = end + 1
    while pos < len(data):
        line_end = data.find(b"\n", pos)
        if line_end < 0 or not data.startswith(b"FRAME", pos):
            raise BaselineError(f"{what}: malformed Y4M frame header at byte {pos}")
        pos = line_end + 1
        raw = np.frombuffer(data, dtype=np.uint8, count=3 * plane, offset=pos)
        frames.append(raw.reshape(3, height, width).transpose(1, 2, 0))
        pos += 3 * plane
    if not frames:
        raise BaselineError(f"{what}: the stream decoded to no pictures")
    return np.stack(frames)


class _X265(Baseline):
    """HEVC 4:4:4 through ffmpeg's libx265; subclasses choose the GOP.

    The setting is x265's constant ``qp``; x265 keeps its default ``ipratio`` (1.4), so I
    pictures are coded about 3 QP finer than the setting (all pictures of ``x265-intra``, the
    first view of each ``x265-joint`` group). Preset ``medium``, no x265 info SEI (``info=0``:
    it would add ~2 KB of encoder settings to every stream).
    """

    setting_name = "qp"
    settings = (46.0, 42.0, 38.0, 34.0, 30.0, 26.0, 22.0)
    high_quality = 10.0
    preset = "medium"

    def available(self) -> Availability:
        return _ffmpeg_x265()

    def _gop_params(self, num_frames: int) -> str:
        raise NotImplementedError

    def _encode_frames(self, frames: np.ndarray, setting: float) -> bytes:
        num, height, width, _ = frames.shape
        qp = int(round(setting))
        if not 0 <= qp <= 51:
            raise ValueError(f"{self.name}: QP must be in 0..51, got {setting}")
        planar = np.ascontiguousarray(rgb_to_ycbcr(frames).transpose(0, 3, 1, 2))  # yuv444p: Y, U, V planes
        x265 = f"qp={qp}:{self._gop_params(num)}:info=0:pools=1:frame-threads=1:log-level=error"
        args = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", f"{width}x{height}", "-framerate", "25",
            "-color_range", "pc", "-i", "pipe:0",
            "-c:v", "libx265", "-preset", self.preset, "-x265-params", x265,
            "-color_range", "pc", "-colorspace", "bt470bg", "-pix_fmt", "yuv444p",
            "-f", "hevc", "pipe:1",
        ]
        data = _run_tool(args, self.name, stdin=planar.tobytes())
        if not data:
            raise BaselineError(f"{self.name}: ffmpeg wrote an empty stream")
        return data

    def _decode_frames(self, data: bytes) -> np.ndarray:
        args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "hevc", "-i", "pipe:0",
                "-pix_fmt", "yuv444p", "-f", "yuv4mpegpipe", "-strict", "-1", "pipe:1"]
        return ycbcr_to_rgb(_read_y4m(_run_tool(args, self.name, stdin=data), self.name))


class X265IntraBaseline(_X265):
    name = "x265-intra"
    description = "HEVC intra 4:4:4 (ffmpeg/libx265, constant QP, one picture per view; BPG-like)"

    def _gop_params(self, num_frames: int) -> str:
        return "keyint=1"

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        return self._encode_frames(_check_view(image, self.name)[None], setting)

    def decode(self, data: bytes) -> np.ndarray:
        frames = self._decode_frames(data)
        if frames.shape[0] != 1:
            raise BaselineError(f"{self.name}: expected one picture, the stream has {frames.shape[0]}")
        return frames[0]


class X265JointBaseline(_X265):
    name = "x265-joint"
    description = ("HEVC 4:4:4 of a whole group as one video (ffmpeg/libx265, constant QP, "
                   "I then P pictures, no B-frames: low-delay P)")
    joint = True

    def _gop_params(self, num_frames: int) -> str:
        keyint = max(num_frames, 2)
        return f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:open-gop=0"

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        return self._encode_frames(_check_group(image, self.name), setting)

    def decode(self, data: bytes) -> np.ndarray:
        return self._decode_frames(data)

    def per_view_bytes(self, data: bytes, num_views: int) -> list[int] | None:
        sizes = _hevc_frame_sizes(data)
        return sizes if len(sizes) == num_views and sum(sizes) == len(data) else None


# --- registry --------------------------------------------------------------------------------------

_BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (JpegBaseline, WebpBaseline, Jpeg2000Baseline, AvifBaseline, JxlBaseline,
                X265IntraBaseline, X265JointBaseline)
}
BASELINE_NAMES: tuple[str, ...] = tuple(_BASELINES)


def get_baseline(name: str) -> Baseline:
    """A baseline by name; unknown names raise ``KeyError`` listing the known ones."""
    try:
        return _BASELINES[name]()
    except KeyError:
        raise KeyError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINE_NAMES)}") from None


def list_baselines() -> list[Baseline]:
    return [cls() for cls in _BASELINES.values()]


def parse_baselines(text: str | Sequence[str] | None) -> list[str]:
    """``"all"``, ``"none"``/empty, or a comma-separated list of names -> validated names."""
    if text is None:
        return []
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    if not items or items == ["none"]:
        return []
    if "all" in items:
        return list(BASELINE_NAMES)
    unknown = [t for t in items if t not in _BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; baselines: {', '.join(BASELINE_NAMES)}, or all")
    return list(dict.fromkeys(items))
