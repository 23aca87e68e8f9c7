"""Rate-distortion evaluation of learned codecs and classical baselines on a multi-view dataset.

The unit of work is one **rate point**: one codec at one setting (a learned codec's checkpoint,
a baseline's quality) coded over the selected groups. :func:`evaluate_point` codes every group,
decodes the real bytes with a fresh decode call, and measures per group and per view:

* ``bpp`` from the real bytes: total bits of all views / total pixels of all views. Learned codecs
  and joint baselines write one stream per group; their per-view bytes are unknown (``None``)
  except for ``x265-joint``, whose stream splits into pictures;
* PSNR on 8-bit RGB, capped at :data:`PSNR_CAP` dB so that a lossless view does not make the
  averages infinite; MS-SSIM (:mod:`mvarchive.metrics`, five scales, NaN for views with a side under 161 pixels);
* encode and decode seconds (wall clock, including tool start-up for command-line baselines).

A rate point's summary holds bpp over all pixels, mean PSNR/MS-SSIM over all views, the mean
per-view quality gap (max − min PSNR across the views of a group: unidirectional multi-view
codecs code later views with less context, so their views are unequal), summed times and times
per megapixel.

:class:`EvaluationResult` collects the curves, the baselines that could not run (with the
reason) and BD results against an anchor; it round-trips through JSON (:meth:`to_json`,
:meth:`from_json`), so two evaluations can be compared later (:func:`compare_results`).

Learned codecs: one rate point per checkpoint (checkpoints of one codec trained at different λ
make a curve). A codec given without checkpoints is evaluated once, freshly initialized from its
preset and seed (deterministic but untrained: useful for smoke tests, not for conclusions).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mvarchive.codecs import CodecRef, MultiViewCodec, get_spec
from mvarchive.codecs.checkpoint import Checkpoint, read_checkpoint
from mvarchive.datasets import DatasetIndex, GroupRef, discover_dataset, load_group
from mvarchive.metrics import psnr, to_tensor, to_uint8, views_ms_ssim  # views_ms_ssim: the one MS-SSIM

from .baselines import Baseline, BaselineError, get_baseline, parse_baselines
from .bd import DEFAULT_METHOD, BDResult, bd_markdown, compare_curves, ms_ssim_db

__all__ = [
    "PSNR_CAP",
    "SCHEMA",
    "CodecCurve",
    "CodedGroup",
    "EvaluationResult",
    "GroupResult",
    "PointSpec",
    "RatePoint",
    "ViewResult",
    "anchor_problem",
    "assemble_result",
    "bd_against",
    "code_group",
    "compare_results",
    "evaluate_point",
    "learned_points",
    "baseline_points",
    "measure_group",
    "parse_codec",
    "plan_points",
    "run_evaluation",
    "summarize_groups",
    "views_ms_ssim",
]

SCHEMA = "mvarchive.evaluation/1"
PSNR_CAP = 100.0  # dB; identical images have infinite PSNR


# --- what to run ----------------------------------------------------------------------------------


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
        checkpoint = read_checkpoint(path)
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


def plan_points(codecs: Sequence[str] = (), checkpoints: Sequence[str] = (), baselines: str | Sequence[str] | None = "all",
                seed: int = 0) -> tuple[list[PointSpec], dict[str, str]]:
    """Every rate point of an evaluation (learned first: they are the slowest) and the unavailable baselines."""
    learned = learned_points(codecs, checkpoints, seed)
    classic, unavailable = baseline_points(parse_baselines(baselines))
    return learned + classic, unavailable


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class ViewResult:
    camera: str
    bytes: int | None  # None when the codec writes one stream for the group
    bpp: float | None
    psnr: float
    ms_ssim: float


@dataclass
class GroupResult:
    group: str
    views: int
    height: int
    width: int
    bytes: int
    bpp: float  # 8 * bytes / (views * height * width)
    psnr: float  # mean over views
    ms_ssim: float  # mean over views (NaN when the views are too small)
    psnr_gap: float  # max - min PSNR over the views
    encode_s: float
    decode_s: float
    per_view: list[ViewResult]

    @property
    def pixels(self) -> int:
        return self.views * self.height * self.width


@dataclass
class CodedGroup:
    """What coding one group produced: the real bytes, the decoded views and the times."""

    total_bytes: int
    view_bytes: list[int] | None
    decoded: np.ndarray  # (K, H, W, 3) uint8, from decoding the bytes
    encode_s: float
    decode_s: float


def _code_learned(codec: MultiViewCodec, views: np.ndarray, where: str) -> CodedGroup:
    x = to_tensor(views)
    started = time.perf_counter()
    compressed = codec.compress(x)
    encoded = time.perf_counter()
    decoded = codec.decompress(compressed.data, where=where)
    done = time.perf_counter()
    return CodedGroup(len(compressed.data), None, to_uint8(decoded.x_hat), encoded - started, done - encoded)


def _code_baseline(baseline: Baseline, views: np.ndarray, setting: float) -> CodedGroup:
    if baseline.joint:
        started = time.perf_counter()
        data = baseline.encode(views, setting)
        encoded = time.perf_counter()
        decoded = baseline.decode(data)
        done = time.perf_counter()
        return CodedGroup(len(data), baseline.per_view_bytes(data, views.shape[0]), decoded,
                          encoded - started, done - encoded)
    sizes, out = [], []
    encode_s = decode_s = 0.0
    for view in views:
        started = time.perf_counter()
        data = baseline.encode(view, setting)
        encoded = time.perf_counter()
        out.append(baseline.decode(data))
        decode_s += time.perf_counter() - encoded
        encode_s += encoded - started
        sizes.append(len(data))
    return CodedGroup(sum(sizes), sizes, np.stack(out), encode_s, decode_s)


def code_group(coder: MultiViewCodec | Baseline, views: np.ndarray, setting: float | None = None,
               where: str = "group") -> CodedGroup:
    """Encode and decode one ``(K, H, W, 3)`` uint8 group with a learned codec or a baseline."""
    if isinstance(coder, Baseline):
        if setting is None:
            raise ValueError(f"baseline {coder.name!r} needs a setting")
        coded = _code_baseline(coder, views, setting)
    else:
        coded = _code_learned(coder, views, where)
    if coded.decoded.shape != views.shape:
        raise BaselineError(f"{where}: decoded shape {coded.decoded.shape} differs from the input {views.shape}")
    return coded


def _capped_psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    return min(psnr(reference, decoded), PSNR_CAP)


def measure_group(name: str, cameras: Sequence[str], views: np.ndarray, coded: CodedGroup) -> GroupResult:
    """Per-view and per-group metrics of one coded group."""
    k, h, w, _ = views.shape
    per_view = []
    ms_values = views_ms_ssim(views, coded.decoded)
    for i, camera in enumerate(cameras):
        nbytes = coded.view_bytes[i] if coded.view_bytes is not None else None
        per_view.append(ViewResult(
            camera=camera, bytes=nbytes, bpp=None if nbytes is None else 8.0 * nbytes / (h * w),
            psnr=_capped_psnr(views[i], coded.decoded[i]), ms_ssim=ms_values[i],
        ))
    psnrs = [v.psnr for v in per_view]
    ms = [v.ms_ssim for v in per_view if math.isfinite(v.ms_ssim)]
    return GroupResult(
        group=name, views=k, height=h, width=w, bytes=coded.total_bytes, bpp=8.0 * coded.total_bytes / (k * h * w),
        psnr=float(np.mean(psnrs)), ms_ssim=float(np.mean(ms)) if ms else math.nan,
        psnr_gap=float(max(psnrs) - min(psnrs)), encode_s=coded.encode_s, decode_s=coded.decode_s, per_view=per_view,
    )


def summarize_groups(groups: Sequence[GroupResult]) -> dict[str, float]:
    """A rate point's averages: bpp over all pixels, means over all views, mean quality gap, times."""
    if not groups:
        return {"groups": 0.0}
    pixels = float(sum(g.pixels for g in groups))
    total_bytes = float(sum(g.bytes for g in groups))
    psnrs = [v.psnr for g in groups for v in g.per_view]
    ms = [v.ms_ssim for g in groups for v in g.per_view if math.isfinite(v.ms_ssim)]
    ms_mean = float(np.mean(ms)) if ms else math.nan
    encode_s = float(sum(g.encode_s for g in groups))
    decode_s = float(sum(g.decode_s for g in groups))
    return {
        "groups": float(len(groups)),
        "views": float(sum(g.views for g in groups)),
        "bytes": total_bytes,
        "bpp": 8.0 * total_bytes / pixels,
        "psnr": float(np.mean(psnrs)),
        "ms_ssim": ms_mean,
        "ms_ssim_db": ms_ssim_db(ms_mean),
        "psnr_gap": float(np.mean([g.psnr_gap for g in groups])),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "encode_s_per_mpix": encode_s / (pixels / 1e6),
        "decode_s_per_mpix": decode_s / (pixels / 1e6),
    }


@dataclass
class RatePoint:
    codec: str
    label: str
    setting: float | None
    groups: list[GroupResult]
    summary: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # checkpoint, weights digest, preset, ...

    def __post_init__(self) -> None:
        if not self.summary:
            self.summary = summarize_groups(self.groups)


def _load_coder(spec: PointSpec) -> tuple[MultiViewCodec | Baseline, dict[str, Any]]:
    if spec.kind == "baseline":
        baseline = get_baseline(spec.codec)
        baseline.require()
        return baseline, {"implementation": baseline.available().reason}
    from mvarchive.codecs import weights_digest
    from mvarchive.runtime.model_cache import codec_on_worker

    codec = codec_on_worker(spec.ref)
    return codec, {"preset": spec.ref.preset, "checkpoint": spec.ref.checkpoint, "seed": spec.ref.seed,
                   "weights_digest": weights_digest(codec)}


def evaluate_point(spec: PointSpec, groups: Sequence[GroupRef], storage_options: dict | None = None,
                   cameras: Sequence[str] | None = None) -> RatePoint:
    """Code and measure every group at one rate point (runs where the task runner puts it)."""
    import torch

    coder, info = _load_coder(spec)
    results = []
    with torch.no_grad():
        for group in groups:
            views = load_group(group, storage_options)
            if isinstance(coder, MultiViewCodec):
                coder.check_views(views.shape[0])
            where = f"{spec.codec} {spec.label}, group {group.name}"
            coded = code_group(coder, views, spec.setting, where=where)
            results.append(measure_group(group.name, cameras or group.cameras, views, coded))
    return RatePoint(spec.codec, spec.label, spec.setting, results, info=info)


# --- results --------------------------------------------------------------------------------------


@dataclass
class CodecCurve:
    name: str
    kind: str  # "learned" or "baseline"
    description: str
    setting_name: str
    points: list[RatePoint]  # sorted by bpp

    def series(self) -> dict[str, list[float]]:
        """``{"bpp", "psnr", "ms_ssim", ...}`` lists over the rate points, for BD and plots."""
        keys = ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "psnr_gap", "encode_s_per_mpix", "decode_s_per_mpix")
        return {k: [float(p.summary.get(k, math.nan)) for p in self.points] for k in keys}


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null (strict JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass
class EvaluationResult:
    """One evaluation run: curves, unavailable baselines, BD results. JSON round-trips."""

    dataset: str
    layout: str
    cameras: list[str]
    groups: list[str]
    anchor: str
    bd_method: str
    curves: list[CodecCurve]
    unavailable: dict[str, str] = field(default_factory=dict)
    bd: list[BDResult] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    wall_s: float = math.nan
    schema: str = SCHEMA

    def curve(self, name: str) -> CodecCurve:
        for curve in self.curves:
            if curve.name == name:
                return curve
        raise KeyError(f"no curve {name!r} in this evaluation; curves: {', '.join(c.name for c in self.curves)}")

    def bd_for(self, name: str) -> BDResult | None:
        return next((r for r in self.bd if r.test == name), None)

    def bd_markdown(self) -> str:
        return bd_markdown(self.bd)

    def rd_markdown(self) -> str:
        """Every rate point as a Markdown table."""
        lines = [
            "| codec | setting | bpp | PSNR dB | MS-SSIM | MS-SSIM dB | view gap dB | enc s/MP | dec s/MP |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for curve in self.curves:
            for p in curve.points:
                s = p.summary
                lines.append(
                    f"| {curve.name} | {p.label} | {s['bpp']:.4f} | {s['psnr']:.2f} | {_f(s['ms_ssim'], 4)} "
                    f"| {_f(s['ms_ssim_db'], 2)} | {s['psnr_gap']:.2f} | {s['encode_s_per_mpix']:.2f} "
                    f"| {s['decode_s_per_mpix']:.2f} |"
                )
        if self.unavailable:
            lines += ["", "Unavailable baselines:"] + [f"- {k}: {v}" for k, v in self.unavailable.items()]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bd"] = [r.to_dict() for r in self.bd]
        return _clean(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"not an mvarchive evaluation result (schema {schema!r}, expected {SCHEMA!r})")

        def view(v: dict) -> ViewResult:
            return ViewResult(v["camera"], v["bytes"], v["bpp"], _nan(v["psnr"]), _nan(v["ms_ssim"]))

        def group(g: dict) -> GroupResult:
            fields = {k: (_nan(v) if k in ("psnr", "ms_ssim", "psnr_gap", "bpp", "encode_s", "decode_s") else v)
                      for k, v in g.items() if k != "per_view"}
            return GroupResult(**fields, per_view=[view(v) for v in g["per_view"]])

        def point(p: dict) -> RatePoint:
            return RatePoint(p["codec"], p["label"], p["setting"], [group(g) for g in p["groups"]],
                             {k: _nan(v) for k, v in p["summary"].items()}, dict(p.get("info") or {}))

        curves = [CodecCurve(c["name"], c["kind"], c["description"], c["setting_name"], [point(p) for p in c["points"]])
                  for c in data["curves"]]
        return cls(
            dataset=data["dataset"], layout=data["layout"], cameras=list(data["cameras"]), groups=list(data["groups"]),
            anchor=data["anchor"], bd_method=data["bd_method"], curves=curves,
            unavailable=dict(data.get("unavailable") or {}), bd=[BDResult.from_dict(r) for r in data.get("bd") or []],
            environment=dict(data.get("environment") or {}), created=data.get("created", ""),
            wall_s=_nan(data.get("wall_s")), schema=schema,
        )

    @classmethod
    def from_json(cls, text: str) -> "EvaluationResult":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EvaluationResult":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _f(value: float, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _describe(point: PointSpec) -> tuple[str, str, str]:
    if point.kind == "baseline":
        baseline = get_baseline(point.codec)
        return "baseline", baseline.description, baseline.setting_name
    return "learned", get_spec(point.codec).description, "checkpoint"


def bd_against(curves: Sequence[CodecCurve], anchor: str, method: str = DEFAULT_METHOD) -> list[BDResult]:
    """BD results of every curve against the anchor curve (empty if the anchor is missing)."""
    by_name = {c.name: c for c in curves}
    if anchor not in by_name:
        return []
    reference = by_name[anchor].series()
    return [compare_curves(anchor, reference, c.name, c.series(), method) for c in curves if c.name != anchor]


def assemble_result(index: DatasetIndex, specs: Sequence[PointSpec], points: Sequence[RatePoint],
                    unavailable: dict[str, str], anchor: str, bd_method: str = DEFAULT_METHOD,
                    environment: dict[str, str] | None = None, wall_s: float = math.nan) -> EvaluationResult:
    """Group measured rate points into curves (in the order the codecs were planned) and compute BD."""
    order = list(dict.fromkeys(s.codec for s in specs))
    first = {s.codec: s for s in reversed(specs)}
    curves = []
    for name in order:
        kind, description, setting_name = _describe(first[name])
        mine = sorted((p for p in points if p.codec == name), key=lambda p: p.summary.get("bpp", math.inf))
        curves.append(CodecCurve(name, kind, description, setting_name, mine))
    result = EvaluationResult(
        dataset=index.url, layout=index.layout, cameras=list(index.cameras), groups=list(index.group_names),
        anchor=anchor, bd_method=bd_method, curves=curves, unavailable=dict(unavailable),
        environment=dict(environment or {}), wall_s=wall_s,
    )
    result.bd = bd_against(curves, anchor, bd_method)
    return result


def anchor_problem(result: EvaluationResult) -> str | None:
    """Why no BD table could be made against the anchor, or None."""
    names = [c.name for c in result.curves]
    if result.anchor in result.unavailable:
        return f"anchor {result.anchor!r} is unavailable: {result.unavailable[result.anchor]}"
    if result.anchor not in names:
        return f"anchor {result.anchor!r} was not evaluated (curves: {', '.join(names) or 'none'})"
    return None


def compare_results(old: EvaluationResult, new: EvaluationResult, codec: str, method: str | None = None) -> BDResult:
    """BD of ``codec``'s curve in ``new`` against the same codec's curve in ``old`` (e.g. after retraining)."""
    return compare_curves(f"{codec} ({old.created})", old.curve(codec).series(), f"{codec} ({new.created})",
                          new.curve(codec).series(), method or new.bd_method)


def run_evaluation(
    dataset: str | DatasetIndex,
    specs: Sequence[PointSpec],
    unavailable: dict[str, str] | None = None,
    *,
    anchor: str = "x265-intra",
    bd_method: str = DEFAULT_METHOD,
    layout: str = "auto",
    groups: Sequence[str] | None = None,
    storage_options: dict | None = None,
    on_point: Callable[[RatePoint], None] | None = None,
) -> EvaluationResult:
    """Evaluate every rate point in this process, one after the other (no Prefect, no Dask).

    The Prefect flow :func:`mvarchive.flows.evaluate.evaluate_dataset` does the same with one
    task per rate point.
    """
    started = time.perf_counter()
    index = dataset if isinstance(dataset, DatasetIndex) else discover_dataset(dataset, layout, storage_options)
    if groups is not None:
        index = index.select(groups=groups)
    points = []
    for spec in specs:
        point = evaluate_point(spec, index.groups, storage_options, index.cameras)
        points.append(point)
        if on_point:
            on_point(point)
    from mvarchive.tracking import environment_params

    return assemble_result(index, specs, points, unavailable or {}, anchor, bd_method, environment_params(),
                           time.perf_counter() - started)
