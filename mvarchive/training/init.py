"""Where a training run's weights start: a fresh codec, or ``--init`` weights.

``TrainConfig.init`` (a checkpoint path/URL or a ``models:/`` URI) supports:

* **retraining**: a checkpoint of the codec and preset being trained (every tensor loads);
* **VEMIC from a single-view model**: ``single-view-mlicpp`` (the MLIC++ base loads whole, the
  view-context modules start fresh; paper §3.3) or ``single-view-elic2022-chandelier`` (only
  the few layers ELIC shares with MLIC++ fit; see :func:`mvarchive.codecs.vemic._elic_groups`);
* **CAMSIC from ELIC**: ``single-view-elic2022-chandelier`` gives g_a / g_s, shared by both
  views; hyperprior and Transformer entropy model start fresh (CAMSIC paper §4).

Anything else is refused with one line naming what the checkpoint holds and what is supported.
Nothing is frozen in any of these: both papers fine-tune the whole model end to end.
:func:`finetune_defaults` gives the papers' training choices for such a run (see
``docs/finetuning.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mvarchive.codecs import MultiViewCodec, create_codec
from mvarchive.codecs.checkpoint import Checkpoint, codec_from_checkpoint
from mvarchive.runtime.checkpoints import fetch_checkpoint

if TYPE_CHECKING:  # loop.py imports this module; the config type is only needed for annotations
    from mvarchive.codecs.transfer import LoadReport

    from .loop import TrainConfig

log = logging.getLogger(__name__)

MLICPP = "single-view-mlicpp"
ELIC = "single-view-elic2022-chandelier"

#: (checkpoint's codec, trained codec) -> what the run is called; besides retraining, the only
#: ways a run may start from another codec's weights.
CROSS_INITS: dict[tuple[str, str], str] = {
    (MLICPP, "vemic"): "vemic-from-mlicpp",
    (ELIC, "vemic"): "vemic-from-elic",
    (ELIC, "camsic"): "camsic-from-elic",
}

SUPPORTED = (
    "the same codec and preset (retraining), vemic from single-view-mlicpp or "
    "single-view-elic2022-chandelier, camsic from single-view-elic2022-chandelier"
)


class InitError(ValueError):
    """``--init`` weights cannot start this run (another codec or preset, or nothing fits)."""


@dataclass(frozen=True)
class InitReport:
    """How a run's weights were initialized: ``kind`` is "fresh", "retrain" or one of
    :data:`CROSS_INITS`' values; counts are of the trained model's state-dict tensors."""

    kind: str
    source: str | None = None  # the --init string
    source_codec: str | None = None  # "name:preset" the checkpoint holds
    loaded: int = 0
    new: int = 0
    skipped: int = 0
    details: str | None = None  # the LoadReport summary of a cross-codec init

    def summary(self) -> str:
        if self.kind == "fresh":
            return "init: fresh weights from the preset"
        return (f"init ({self.kind}) from {self.source} [{self.source_codec}]: {self.loaded} tensors loaded, "
                f"{self.new} new, {self.skipped} skipped (shape mismatch)")


def read_init_source(init: str, storage_options: dict[str, Any] | None = None) -> Checkpoint:
    """The checkpoint ``init`` names (path, fsspec URL or ``models:/`` URI), tensors only."""
    return fetch_checkpoint(init, storage_options)


def _refuse(config: TrainConfig, held: str, why: str = "") -> InitError:
    return InitError(f"--init {config.init} holds {held}, this run trains {config.codec}:{config.preset}{why}; "
                     f"supported: {SUPPORTED}")


def _retrain(config: TrainConfig, source: Checkpoint) -> tuple[MultiViewCodec, InitReport]:
    if source.preset != config.preset:
        raise _refuse(config, source.held)
    model = codec_from_checkpoint(source, f"--init {config.init}")
    count = len(model.state_dict())
    return model, InitReport("retrain", config.init, source.held, loaded=count)


def _cross(config: TrainConfig, source: Checkpoint, kind: str) -> tuple[MultiViewCodec, InitReport]:
    builders: dict[str, Callable[[], tuple[MultiViewCodec, LoadReport]]] = {
        "vemic-from-mlicpp": lambda: _vemic(source, config.preset, "mlicpp"),
        "vemic-from-elic": lambda: _vemic(source, config.preset, "elic"),
        "camsic-from-elic": lambda: _camsic(source, config.preset),
    }
    model, report = builders[kind]()
    # The base of VEMIC (all of MLIC++) and CAMSIC's g_a / g_s are what makes the run a
    # fine-tune: another preset of the source leaves them fresh, which is training from scratch.
    must_fit = {"vemic-from-mlicpp": ("base.",), "camsic-from-elic": ("g_a.", "g_s.")}.get(kind, ())
    misfits = [name for name in report.skipped if name.startswith(must_fit)] if must_fit else []
    if misfits or not report.loaded:
        detail = f"{misfits[0]}: {report.reasons[misfits[0]][:120]}" if misfits else "no layer maps"
        raise _refuse(config, source.held, f", whose {len(misfits) or 'mapped'} tensors do not fit ({detail}); "
                                           f"use the {config.codec} preset matching the checkpoint's")
    init = InitReport(kind, config.init, source.held, loaded=len(report.loaded), new=len(report.new),
                      skipped=len(report.skipped), details=report.summary())
    return model, init


def _vemic(source: Checkpoint, preset: str, kind: str) -> tuple[MultiViewCodec, LoadReport]:
    from mvarchive.codecs.vemic import vemic_from_single_view

    state = source.state_dict
    if kind == "elic":  # the mapping names CompressAI's Elic2022Chandelier keys, which our codec keeps under model.
        state = {k.removeprefix("model."): v for k, v in state.items()}
    return vemic_from_single_view(state, preset=preset, source=kind)


def _camsic(source: Checkpoint, preset: str) -> tuple[MultiViewCodec, LoadReport]:
    from mvarchive.codecs.camsic import camsic_from_elic

    return camsic_from_elic(source.state_dict, preset=preset)


def initial_model_with_report(config: TrainConfig) -> tuple[MultiViewCodec, InitReport]:
    """:func:`initial_model` and what it loaded (see the module doc for what is supported)."""
    if config.init is None:
        return create_codec(config.codec, config.preset), InitReport("fresh")
    return model_from_source(config, read_init_source(config.init, config.storage_options))


def model_from_source(config: TrainConfig, source: Checkpoint) -> tuple[MultiViewCodec, InitReport]:
    """The codec ``config`` trains, started from ``source`` (a checkpoint already read), or
    :class:`InitError` for a combination that is not supported or does not fit; the CLI calls
    it to refuse before any service starts."""
    if source.codec == config.codec:
        return _retrain(config, source)
    kind = CROSS_INITS.get((source.codec, config.codec))
    if kind is None:
        raise _refuse(config, source.held)
    return _cross(config, source, kind)


def initial_model(config: TrainConfig) -> MultiViewCodec:
    """A fresh codec from its preset, or one starting from the weights of ``config.init``
    (retraining or a supported cross-codec fine-tune); logs what loaded."""
    model, report = initial_model_with_report(config)
    if report.kind != "fresh":
        log.info("%s", report.details or report.summary())
        print(report.summary())
    return model


# --- the papers' fine-tuning choices ----------------------------------------------------------
#: λ of MLIC++/CompressAI (MSE of 0..255 images) -> this project's λ (MSE of [0, 1] images).
PIXEL_SCALE = 255.0**2

#: VEMIC's λ (paper §4, from MLIC++/CompressAI), in the paper's and in this project's units.
VEMIC_LAMBDAS_PAPER = (0.0067, 0.0130, 0.0250, 0.0483)
VEMIC_LAMBDAS = tuple(round(lam * PIXEL_SCALE, 1) for lam in VEMIC_LAMBDAS_PAPER)  # 435.7 … 3140.7


def finetune_defaults(source: Checkpoint, codec: str) -> dict[str, Any]:
    """:class:`TrainConfig` fields a fine-tune from ``source`` should take from its paper
    when the user did not set them (the CLI applies these only to options left unset).

    Both papers: Adam at lr 1e-4, whole model trained, nothing frozen. VEMIC initializes each
    rate point from the MLIC++ checkpoint of the *same* λ, so the λ the source was trained
    with (recorded by ``mvarchive train`` in the checkpoint) is kept; CAMSIC takes g_a / g_s
    from one ELIC model for every λ, so λ stays the user's choice.
    """
    kind = CROSS_INITS.get((source.codec, codec), "retrain" if source.codec == codec else None)
    if kind is None:
        return {}
    defaults: dict[str, Any] = {"learning_rate": 1e-4, "lr_schedule": "paper"}
    if kind in ("vemic-from-mlicpp", "retrain") and isinstance(source.extra.get("lmbda"), (int, float)):
        defaults["lmbda"] = float(source.extra["lmbda"])
    return defaults


def init_tags(config: TrainConfig) -> dict[str, str]:
    """Tags for the registered version of a run started from ``--init``: its parent."""
    if config.init is None:
        return {}
    return {"parent_checkpoint": str(config.init)}


__all__ = [
    "CROSS_INITS",
    "InitError",
    "InitReport",
    "VEMIC_LAMBDAS",
    "finetune_defaults",
    "init_tags",
    "initial_model",
    "initial_model_with_report",
    "model_from_source",
    "read_init_source",
]
