"""An evaluation's results: rate points grouped into curves, BD against an anchor, JSON.

:class:`EvaluationResult` collects the curves, the baselines that could not run (with the
reason) and BD results against an anchor; it round-trips through JSON (:meth:`~EvaluationResult.
to_json`, :meth:`~EvaluationResult.from_json`; schema :data:`SCHEMA`), so two evaluations can be
compared later (:func:`compare_results`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mvarchive.codecs import get_spec
from mvarchive.datasets import DatasetIndex

from .baselines import get_baseline
from .bd import DEFAULT_METHOD, BDResult, bd_markdown, compare_curves
from .measuring import GroupResult, RatePoint, ViewResult
from .planning import PointSpec

__all__ = [
    "SCHEMA", "CodecCurve", "EvaluationResult", "anchor_problem", "assemble_result", "bd_against", "compare_results",
]

SCHEMA = "mvarchive.evaluation/1"


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
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"not an mvarchive evaluation result (schema {schema!r}, expected {SCHEMA!r})")

        def view(v: dict) -> ViewResult:
            return ViewResult(v["camera"], v["bytes"], v["bpp"], _nan(v["psnr"]), _nan(v["ms_ssim"]))

        def group(g: dict) -> GroupResult:
            floats = ("psnr", "ms_ssim", "psnr_gap", "bpp", "encode_s", "decode_s")
            fields: dict[str, Any] = {k: (_nan(v) if k in floats else v) for k, v in g.items() if k != "per_view"}
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
    def from_json(cls, text: str) -> EvaluationResult:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
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
