"""The deployment gate as a ZenML step: check the candidates, promote the model version.

The step compares with the current ``production`` version of the pipeline's ZenML model (the
"champion") and, when a candidate passes, moves the running model version to ``stage`` and
attaches the checked figures to it as metadata. It is never cached: the champion is external
state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from zenml import get_step_context, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import HTMLString

from ..errors import ConstraintNotMetError
from ..gate import CandidateMeasurements, GateDecision, GatePolicy, decide, decision_html
from ._runtime import STEP_SETTINGS, _plain, record_metadata

if TYPE_CHECKING:
    from zenml import Model

__all__ = ["CHAMPION_ACCURACY_KEY", "deployment_gate"]

logger = logging.getLogger(__name__)

#: Model-version metadata key holding the accuracy the gate checked when it promoted a version;
#: the next gate run reads it from the production version as the champion's accuracy.
CHAMPION_ACCURACY_KEY = "zq_gate_accuracy"


def _running_model() -> Model | None:
    """The ZenML model version of the running step; None outside a run or without a model."""
    try:
        return get_step_context().model
    except Exception:  # RuntimeError outside a step, StepContextError without a model
        return None


def _champion(model: Model) -> tuple[float | None, str]:
    """The accuracy of the current production version of ``model`` and a note saying whence."""
    try:
        production = Client().get_model_version(model.name, ModelStages.PRODUCTION)
    except (KeyError, RuntimeError, ValueError):  # no production version yet: first run
        return None, "no production version"
    if production.id == model.id:
        return None, "the running version is production itself"
    value = production.run_metadata.get(CHAMPION_ACCURACY_KEY)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, (
            f"production version {production.name} has no {CHAMPION_ACCURACY_KEY} metadata "
            f"(not promoted by this gate): not compared"
        )
    return float(value), f"production version {production.name}"


def _figures(decision: GateDecision, candidate: CandidateMeasurements) -> dict[str, Any]:
    """The model-version metadata of a promoted candidate (plain types only)."""
    figures: dict[str, Any] = {
        "zq_gate_candidate": candidate.name,
        "zq_gate_stage": decision.stage,
        CHAMPION_ACCURACY_KEY: candidate.accuracy,
        "zq_gate_baseline_accuracy": candidate.baseline_accuracy,
        "zq_gate_size_bytes": candidate.size_bytes,
        "zq_gate_latency_ms": dict(candidate.latency_ms) or None,
        "zq_gate_peak_memory_bytes": candidate.peak_memory_bytes,
        "zq_gate_checks": {c.name: c.reason for c in decision.checks} or None,
    }
    return {k: _plain(v) for k, v in figures.items() if v is not None}


@step(enable_cache=False, settings=STEP_SETTINGS)
def deployment_gate(
    candidates: list[CandidateMeasurements],
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
    relative_drop: bool = False,
    max_size_bytes: int | None = None,
    max_latency_ms: float | None = None,
    latency_percentile: str = "p50",
    latency_threads: int = 1,
    max_peak_memory_bytes: int | None = None,
    required: list[str] | None = None,
    champion_margin: float | None = None,
    stage: str | None = "staging",
    raise_on_fail: bool = True,
) -> tuple[Annotated[GateDecision, "zq_gate_decision"], Annotated[HTMLString, "zq_gate_report"]]:
    """Check ``candidates`` against the targets and promote the model version if one passes.

    Limits left at None are not checked (see :class:`zenml_quant.gate.GatePolicy`); a set limit
    whose figure is missing fails. With a ZenML ``Model`` on the pipeline, ``champion_margin``
    compares with the current production version's accuracy (no production version: passes),
    and a pass moves the running model version to ``stage`` (``"staging"``, ``"production"``;
    None only decides) with the selected candidate's figures as model-version metadata.

    The decision is logged as step metadata first. When nothing passes and ``raise_on_fail``,
    nothing is promoted and the step raises :class:`ConstraintNotMetError` listing the failed
    checks, which fails the run; otherwise the decision is returned for downstream steps.
    """
    policy = GatePolicy(
        min_accuracy=min_accuracy,
        max_accuracy_drop=max_accuracy_drop,
        relative_drop=relative_drop,
        max_size_bytes=max_size_bytes,
        max_latency_ms=max_latency_ms,
        latency_percentile=latency_percentile,
        latency_threads=latency_threads,
        max_peak_memory_bytes=max_peak_memory_bytes,
        required=tuple(required or ()),
        champion_margin=champion_margin,
    )
    model = _running_model()
    champion_accuracy, champion_note = (
        (None, "no ZenML model") if model is None else _champion(model)
    )
    decision = decide(policy, candidates, champion_accuracy=champion_accuracy, stage=stage)

    record_metadata(
        {
            "passed": decision.passed,
            "selected": decision.selected,
            "stage": decision.stage,
            "checked": decision.checked,
            "reasons": list(decision.reasons),
            "failed_checks": [c.name for c in decision.failed_checks],
            "checks": {c.name: c.reason for c in decision.checks},
            "champion_accuracy": decision.champion_accuracy,
            "champion": champion_note,
            "candidates": len(candidates),
        }
    )

    if not decision.passed:
        if raise_on_fail:
            raise ConstraintNotMetError(
                "Deployment gate failed, nothing promoted:\n- "
                + "\n- ".join(decision.reasons)
                + "\nImprove the candidate (e.g. int8, the search) or relax the targets; pass "
                "raise_on_fail=False to let the run finish with a failed decision."
            )
        logger.warning("Deployment gate failed: %s", "; ".join(decision.reasons))
    elif decision.stage is not None and model is not None:
        selected = next(c for c in candidates if c.name == decision.selected)
        model.set_stage(decision.stage, force=True)
        model.log_metadata(_figures(decision, selected))
    return decision, HTMLString(decision_html(decision))
