"""What an evaluation runs: its **rate points**, one codec at one setting each.

Learned codecs: one rate point per checkpoint (checkpoints of one codec trained at different λ
make a curve). A codec given without checkpoints is evaluated once, freshly initialized from its
preset and seed (deterministic but untrained: useful for smoke tests, not for conclusions).
Baselines: one rate point per setting of each available tool; unavailable ones are named with
the reason. A :class:`PointSpec` holds references only, so it pickles cheaply to a Dask worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mvarchive.codecs import get_spec
from mvarchive.codecs.checkpoint import Checkpoint
from mvarchive.runtime.checkpoints import CodecRef, fetch_checkpoint

from .baselines import get_baseline, parse_baselines

__all__ = ["PointSpec", "baseline_points", "learned_points", "parse_codec", "plan_points"]


@dataclass(frozen=True)
class PointSpec:
    """One rate point to measure: references only, so it pickles cheaply to a Dask worker."""

    codec: str  # curve name: a registered codec name or a baseline name
    kind: str  # "learned" or "baseline"
    label: str  # the setting as shown: "quality=75", "qp=30", a checkpoint's name
    setting: float | None = None  # a baseline's setting
    ref: CodecRef | None = None  # a learned codec

    def __post_init__(self) -> None:
        if self.kind not in ("learned", "baseline"):
            raise ValueError(f"PointSpec.kind must be 'learned' or 'baseline', got {self.kind!r}")
        if self.kind == "learned" and self.ref is None:
            raise ValueError("a learned rate point needs a CodecRef")
        if self.kind == "baseline" and self.setting is None:
            raise ValueError("a baseline rate point needs a setting")


def parse_codec(text: str) -> tuple[str, str]:
    """``"name"`` or ``"name:preset"`` -> (name, preset); the preset defaults to ``paper``."""
    name, _, preset = text.partition(":")
    name, preset = name.strip(), (preset.strip() or "paper")
    spec = get_spec(name)  # KeyError listing the registered codecs
    if preset not in spec.presets:
        raise KeyError(f"codec {name!r} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
    return name, preset


def _checkpoint_label(path: str, checkpoint: Checkpoint) -> str:
    lmbda = checkpoint.extra.get("lmbda")
    stem = Path(path).stem
    return f"λ={lmbda:g} ({stem})" if isinstance(lmbda, (int, float)) else stem


def learned_points(codecs: Sequence[str] = (), checkpoints: Sequence[str] = (), seed: int = 0) -> list[PointSpec]:
    """Rate points of learned codecs.

    Each checkpoint is one rate point of the codec it holds (so several checkpoints of one
    codec trained at different λ form its curve); ``codecs`` (``name`` or ``name:preset``)
    without a checkpoint are evaluated once, untrained, from the preset and ``seed``. A
    checkpoint of a codec not named in ``codecs`` is an error when ``codecs`` is given.
    """
    wanted: dict[str, str] = {}
    for text in codecs:
        name, preset = parse_codec(text)
        if name in wanted:
            raise ValueError(f"codec {name!r} given twice; give each codec once (checkpoints make its rate points)")
        wanted[name] = preset
    points: list[PointSpec] = []
    with_checkpoint: set[str] = set()
    for path in checkpoints:
        checkpoint = fetch_checkpoint(path)
        name = checkpoint.codec
        if wanted and name not in wanted:
            raise ValueError(f"checkpoint {path} holds codec {name!r}, which is not among --codec {', '.join(wanted)}")
        with_checkpoint.add(name)
        points.append(PointSpec(name, "learned", _checkpoint_label(path, checkpoint),
                                ref=CodecRef(name, checkpoint.preset, str(path), seed)))
    for name, preset in wanted.items():
        if name not in with_checkpoint:
            points.append(PointSpec(name, "learned", f"{preset} (untrained, seed {seed})",
                                    ref=CodecRef(name, preset, None, seed)))
    return points


def baseline_points(names: Iterable[str]) -> tuple[list[PointSpec], dict[str, str]]:
    """Rate points of the available baselines, and ``{name: reason}`` for unavailable ones."""
    points: list[PointSpec] = []
    unavailable: dict[str, str] = {}
    for name in names:
        baseline = get_baseline(name)
        state = baseline.available()
        if not state:
            unavailable[name] = state.reason
            continue
        for setting in baseline.settings:
            points.append(PointSpec(name, "baseline", f"{baseline.setting_name}={setting:g}", setting=float(setting)))
    return points, unavailable


def plan_points(codecs: Sequence[str] = (), checkpoints: Sequence[str] = (),
                baselines: str | Sequence[str] | None = "all", seed: int = 0) -> tuple[list[PointSpec], dict[str, str]]:
    """Every rate point of an evaluation (learned first: they are the slowest) and the unavailable baselines."""
    learned = learned_points(codecs, checkpoints, seed)
    classic, unavailable = baseline_points(parse_baselines(baselines))
    return learned + classic, unavailable
