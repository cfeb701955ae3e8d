"""Plain types shared by the architecture search: targets, trials and their outcomes.

Everything here is a frozen dataclass of plain values (plus ``bytes`` payloads in
:class:`TrialOutcome`), so it pickles to process-pool and Ray workers and crosses ZenML step
boundaries without custom code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._validate import as_finite
from ..errors import InvalidOptionError
from ..targets import Targets
from .edits import EditPlan

__all__ = [
    "FAILED",
    "OK",
    "PHASE_COLUMNS",
    "PROPOSERS",
    "REWARD_MODES",
    "RewardOptions",
    "Targets",
    "TrialOutcome",
    "TrialRecord",
    "TrialTask",
]

OK = "ok"
FAILED = "failed"
REWARD_MODES = ("soft", "hard", "forgiving")
PROPOSERS = ("controller", "random", "local")


#: A trial's phases and the history column holding the seconds spent in each.
PHASE_COLUMNS = {
    "building": "build_s",
    "fine-tuning": "fine_tune_s",
    "converting": "convert_s",
    "evaluating": "evaluate_s",
    "benchmarking": "benchmark_s",
}


@dataclass(frozen=True)
class RewardOptions:
    """How a trial's figures become the controller's reward.

    - ``"soft"`` (MnasNet): ``accuracy * prod((cost/target) ** w)`` with ``w = 0`` when a target
      is met and ``w = -penalty`` when it is missed; accuracy below its floor multiplies by
      ``(accuracy/floor) ** accuracy_penalty``.
    - ``"hard"``: the accuracy when every target is met, else 0 (the candidate is rejected).
    - ``"forgiving"`` (AutoQKeras' forgiving factor): see :func:`reward`.
    """

    mode: str = "soft"
    penalty: float = 1.0
    accuracy_penalty: float = 10.0
    forgiving_delta: float = 8.0
    forgiving_rate: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in REWARD_MODES:
            raise InvalidOptionError(
                f"Unknown reward mode {self.mode!r}: use one of {', '.join(REWARD_MODES)}."
            )
        for name in ("penalty", "accuracy_penalty", "forgiving_delta"):
            value = getattr(self, name)
            if as_finite(value) is None or value < 0:
                raise InvalidOptionError(f"{name} must be a number >= 0, got {value!r}.")
        if as_finite(self.forgiving_rate) is None or self.forgiving_rate <= 1:
            raise InvalidOptionError(
                f"forgiving_rate must be a number > 1, got {self.forgiving_rate!r}."
            )


@dataclass(frozen=True)
class TrialTask:
    """One candidate to evaluate: its edits and the seed its fine-tuning uses."""

    trial: int
    plan: EditPlan
    seed: int
    fine_tune: bool = True
    #: The fine-tuning this trial gets instead of the search's (a successive-halving rung).
    fine_tune_options: Any = None


@dataclass(frozen=True)
class TrialRecord:
    """What one trial measured. ``status`` is ``"ok"`` or ``"failed"`` (then ``error`` says why
    and the figures are None). ``accuracy`` is the converted TFLite model's on validation."""

    trial: int
    plan: EditPlan
    status: str
    seconds: float
    error: str | None = None
    accuracy: float | None = None
    keras_accuracy: float | None = None
    size_bytes: int | None = None
    peak_memory_bytes: int | None = None
    latency_ms: float | None = None
    energy_uj: float | None = None
    params: int | None = None
    macs: int | None = None
    reward: float | None = None
    meets_targets: bool = False
    notes: tuple[str, ...] = ()
    #: Where the trial's time went: ``(phase, seconds)`` for building, fine-tuning,
    #: converting, evaluating and benchmarking, in the order first met.
    phase_seconds: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == OK

    def figures(self) -> dict[str, Any]:
        """The measured figures by the names :meth:`Targets.resource_limits` uses."""
        return {
            "accuracy": self.accuracy,
            "size_bytes": self.size_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "latency_ms": self.latency_ms,
            "energy_uj": self.energy_uj,
        }


@dataclass(frozen=True)
class TrialOutcome:
    """A record plus the trial's models: the ``.tflite`` flatbuffer and the fine-tuned Keras
    model as ``.keras`` file bytes (both None for a failed trial)."""

    record: TrialRecord
    tflite: bytes | None = field(default=None, repr=False)
    keras: bytes | None = field(default=None, repr=False)
