"""Classical baselines: every available one round-trips a natural crop at high quality; unavailable
ones say why; sweeps span low to high rates; tool failures are clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mvarchive.datasets import discover_dataset, load_group
from mvarchive.evaluation import baselines as bl
from mvarchive.evaluation import plan_points
from mvarchive.evaluation.baselines import (
    BASELINE_NAMES,
    AvifBaseline,
    BaselineError,
    get_baseline,
    parse_baselines,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from mvarchive.metrics import psnr

# Command-line tools scripts/install-system-deps.sh installs, per baseline. Pillow-only baselines
# have none: Pillow's wheels carry libjpeg-turbo, libwebp and openjpeg, so they must be available.
TOOLS = {"jxl": ("cjxl", "djxl"), "x265-intra": ("ffmpeg",), "x265-joint": ("ffmpeg",)}


@pytest.fixture(scope="module")
def stereo_group(sample_data) -> np.ndarray:
    """The chelsea stereo pair (2, 256, 320, 3)."""
    index = discover_dataset(str(sample_data.stereo)).select(groups=["chelsea"])
    return load_group(index.groups[0])


@pytest.fixture(scope="module")
def crop(stereo_group) -> np.ndarray:
    """A 64x96 natural crop. Lossy WebP is 4:2:0 only: on crops with saturated colour edges
    (e.g. the rocket's) it stays under 40 dB even at quality 100, so a crop of fur is used."""
    return np.ascontiguousarray(stereo_group[0, 96:160, 112:208])


def require_available(name: str):
    baseline = get_baseline(name)
    state = baseline.available()
    missing = [t for t in TOOLS.get(name, ()) if shutil.which(t) is None]
    if name == "avif" and not state:
        missing = [t for t in ("avifenc", "avifdec") if shutil.which(t) is None]
    if missing:
        assert not state
        pytest.skip(f"{name}: {' and '.join(missing)} not installed (scripts/install-system-deps.sh installs it); "
                    f"reported reason: {state.reason}")
    assert state, f"{name} should be available here but reports: {state.reason}"
    return baseline


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_available_baselines_round_trip_a_crop_above_40_db(name, crop):
    baseline = require_available(name)
    image = np.stack([crop, crop[:, ::-1]]) if baseline.joint else crop
    data = baseline.encode(image, baseline.high_quality)
    assert isinstance(data, bytes) and len(data) > 0
    decoded = baseline.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert psnr(image, decoded) > 40.0


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_sweep_goes_from_low_to_high_rate(name, crop):
    baseline = require_available(name)
    image = np.stack([crop, crop]) if baseline.joint else crop
    pixels = image.size // 3
    low, high = (8 * len(baseline.encode(image, s)) / pixels for s in (baseline.settings[0], baseline.settings[-1]))
    assert low < 0.6 < 1.2 < high, (low, high)


def test_joint_hevc_codes_later_views_from_earlier_ones(stereo_group):
    baseline = require_available("x265-joint")
    group = np.ascontiguousarray(stereo_group[:, :128, :160])
    data = baseline.encode(group, 30)
    sizes = baseline.per_view_bytes(data, 2)
    assert sizes is not None and sum(sizes) == len(data)
    assert sizes[1] < sizes[0]  # the right view is a shifted left view: predicted, not coded anew
    decoded = baseline.decode(data)
    assert decoded.shape == group.shape and psnr(group, decoded) > 30


def test_ycbcr_conversion_loses_little():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert psnr(rgb, back) > 48.0
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 2


@pytest.mark.parametrize("backend", ["pillow", "avifenc"])
def test_avif_backends(backend, crop):
    baseline = AvifBaseline(backend)
    state = baseline.available()
    if not state:
        pytest.skip(f"AVIF backend {backend} unavailable: {state.reason}")
    data = baseline.encode(crop, baseline.high_quality)
    assert len(data) > 0 and psnr(crop, baseline.decode(data)) > 40.0


def test_missing_tools_are_reported_with_the_package_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    bl._ffmpeg_x265.cache_clear()
    try:
        jxl = get_baseline("jxl").available()
        assert not jxl and "cjxl" in jxl.reason and "libjxl-tools" in jxl.reason
        x265 = get_baseline("x265-intra").available()
        assert not x265 and "ffmpeg" in x265.reason
        specs, unavailable = plan_points([], [], "jpeg,jxl,x265-joint")
        assert set(unavailable) == {"jxl", "x265-joint"}
        assert {s.codec for s in specs} == {"jpeg"}
        with pytest.raises(BaselineError, match="unavailable: cjxl"):
            get_baseline("jxl").require()
        with pytest.raises(BaselineError, match="not installed"):
            bl._run_tool(["cjxl", "a", "b"], "jxl")
    finally:
        bl._ffmpeg_x265.cache_clear()


def test_undecodable_bytes_raise_a_clear_error():
    with pytest.raises(BaselineError, match="jpeg: cannot decode 5 bytes"):
        get_baseline("jpeg").decode(b"\x00garb")
    x265 = get_baseline("x265-intra")
    if x265.available():
        with pytest.raises(BaselineError, match="x265-intra"):
            x265.decode(b"not an hevc stream")


def test_parse_baselines():
    assert parse_baselines("all") == list(BASELINE_NAMES)
    assert parse_baselines("none") == [] and parse_baselines("") == []
    assert parse_baselines("webp, jpeg,webp") == ["webp", "jpeg"]
    with pytest.raises(ValueError, match="unknown baseline.*bpg.*x265-intra"):
        parse_baselines("jpeg,bpg")
    with pytest.raises(KeyError, match="baselines: jpeg"):
        get_baseline("png")
