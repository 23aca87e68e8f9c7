"""Learning-rate schedules: each codec's published one, mapped onto the run's ``steps``.

The papers train for hundreds of epochs (about a million steps); mvarchive runs are shorter,
so a milestone at epoch e of E becomes step ``round(steps * e / E)``, and the factor is the
paper's. The learning rate itself is ``TrainConfig.learning_rate`` (1e-4 in every paper).

=========================  =====================================================  ==========================
codec                      paper recipe                                           milestones (fraction), ×
=========================  =====================================================  ==========================
ldmic, ldmic-fast          halve every 100 of 400 epochs (LDMIC §4, App. 6.5)      0.25, 0.5, 0.75; ×0.5
ecsic                      1e-4 → 1e-5 after 1 M of ≈1.3 M steps (ECSIC §4.1)      0.77; ×0.1
bisic, bisic-fast          halve every 300 k of 1.5 M steps (BiSIC §4.1)           0.2, 0.4, 0.6, 0.8; ×0.5
camsic                     halve every 100 of 400 epochs (CAMSIC §4.1)             0.25, 0.5, 0.75; ×0.5
vemic                      1e-5/1e-6/1e-7 at 100/180/220 of 250 epochs (VEMIC)     0.4, 0.72, 0.88; ×0.1
single-view-mlicpp         VEMIC's (its fine-tuning starts from this model)         0.4, 0.72, 0.88; ×0.1
single-view-elic…          CAMSIC's (CAMSIC takes its transforms from ELIC)         0.25, 0.5, 0.75; ×0.5
single-view-mbt2018-mean   LDMIC's (the single-view baseline LDMIC compares to)     0.25, 0.5, 0.75; ×0.5
=========================  =====================================================  ==========================

"constant" keeps ``learning_rate`` throughout (what mvarchive did before schedules).

Resume: the schedule's state (step, horizon) is saved in ``last.pt``; a run resumed with the
same ``steps`` continues exactly. A run *extended* (resumed with more ``steps``) re-maps the
remaining milestones onto the new horizon, so the learning rate may rise again from where the
shorter schedule had decayed it (a warm restart); the loop logs when that happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCHEDULES = ("paper", "constant")


@dataclass(frozen=True)
class PaperSchedule:
    """Multiply the learning rate by ``factor`` at each fraction of the run in ``milestones``."""

    milestones: tuple[float, ...]
    factor: float
    source: str


_HALVE_QUARTERS = PaperSchedule((0.25, 0.5, 0.75), 0.5, "halve every 100 of 400 epochs")
_VEMIC = PaperSchedule((100 / 250, 180 / 250, 220 / 250), 0.1, "x0.1 at epochs 100/180/220 of 250")

PAPER_SCHEDULES: dict[str, PaperSchedule] = {
    "ldmic": _HALVE_QUARTERS,
    "ldmic-fast": _HALVE_QUARTERS,
    "ecsic": PaperSchedule((1.0 / 1.3,), 0.1, "x0.1 after 1M of 1.3M steps"),
    "bisic": PaperSchedule((0.2, 0.4, 0.6, 0.8), 0.5, "halve every 300k of 1.5M steps"),
    "bisic-fast": PaperSchedule((0.2, 0.4, 0.6, 0.8), 0.5, "halve every 300k of 1.5M steps"),
    "camsic": _HALVE_QUARTERS,
    "vemic": _VEMIC,
    "single-view-mlicpp": _VEMIC,
    "single-view-elic2022-chandelier": _HALVE_QUARTERS,
    "single-view-mbt2018-mean": _HALVE_QUARTERS,
}


def paper_schedule(codec: str) -> PaperSchedule:
    """The codec's published schedule; codecs registered later without one get LDMIC's."""
    return PAPER_SCHEDULES.get(codec, _HALVE_QUARTERS)


class StepSchedule:
    """Sets each param group's learning rate from the step and the run's horizon.

    A pure function of ``(step, steps)`` (no accumulated state), so resuming only needs the
    step; :meth:`state_dict` records the horizon too, to notice a run that was extended.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, codec: str, steps: int) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {name!r}; known: {', '.join(SCHEDULES)}")
        self.optimizer = optimizer
        self.name = name
        self.paper = paper_schedule(codec) if name == "paper" else PaperSchedule((), 1.0, "constant")
        self.steps = steps
        self.base = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, self.base):
            group["initial_lr"] = lr

    def factor(self, step: int) -> float:
        """The multiplier on the base learning rate for the optimizer step after ``step``."""
        passed = sum(1 for m in self.paper.milestones if step >= round(m * self.steps))
        return self.paper.factor**passed

    def apply(self, step: int) -> float:
        """Set the learning rate for the update that takes the run from ``step`` to ``step + 1``."""
        scale = self.factor(step)
        for group, lr in zip(self.optimizer.param_groups, self.base):
            group["lr"] = lr * scale
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"name": self.name, "steps": self.steps, "base": list(self.base)}

    def load_state_dict(self, state: dict) -> int | None:
        """Restore the base rates; returns the old horizon when the run was extended (else None)."""
        self.base = [float(lr) for lr in state["base"]]
        for group, lr in zip(self.optimizer.param_groups, self.base):
            group["initial_lr"] = lr
        old = int(state["steps"])
        return old if old != self.steps and self.paper.milestones else None
