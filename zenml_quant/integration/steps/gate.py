"""The deployment gate as a ZenML step: check the candidates, promote the model version.

The step reads the model version already in the stage asked for (the "champion"), calls
:func:`zenml_quant.gate.decide`, and when a candidate passes moves the running model version to
that stage, records the checked figures as model-version metadata and links the chosen
``.tflite`` to it as the deployment artifact ``zq_deployment_tflite``. It is never cached: the
champion is external state.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from zenml import get_step_context, save_artifact, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.types import HTMLString

from ..._validate import as_finite
from ...errors import ConstraintNotMetError
from ...gate import CandidateMeasurements, Champion, GateDecision, GateOptions, decide
from ...metrics import metric_named
from ...report.gate import decision_html
from ...targets import Targets
from ...types import TFLiteModel
from .._runtime import STEP_SETTINGS, _plain, record_metadata
from ..materializers.tflite_model import TFLiteModelMaterializer

if TYPE_CHECKING:
    from zenml import Model

__all__ = ["CHAMPION_ACCURACY_KEY", "DEPLOYMENT_ARTIFACT", "deployment_gate", "read_champion"]

logger = logging.getLogger(__name__)

#: Model-version metadata key holding the accuracy the gate checked when it promoted a version;
#: the next gate run reads it from the version in the stage as the champion's accuracy.
CHAMPION_ACCURACY_KEY = "zq_gate_accuracy"
#: Recorded figures of a promoted version shown beside the challenger's (not checked).
_CHAMPION_FIGURES = (
    "zq_gate_candidate",
    "zq_gate_size_bytes",
    "zq_gate_latency_ms",
    "zq_gate_peak_memory_bytes",
)
#: The deployment artifact a promoted model version links: the chosen ``.tflite``, byte for byte.
DEPLOYMENT_ARTIFACT = "zq_deployment_tflite"


def _running_model() -> Model | None:
    """The ZenML model version of the running step; None outside a run or without a model."""
    try:
        return get_step_context().model
    except Exception:  # RuntimeError outside a step, StepContextError without a model
        return None


def read_champion(model_name: str, stage: str, running_id: Any = None) -> Champion | None:
    """The version of ``model_name`` now in ``stage``, with the accuracy the gate recorded.

    None when the stage is empty (the first promotion) or holds the running version itself. A
    version that exists but cannot be read comes back with ``accuracy=None`` and the reason in
    ``source``: the gate then refuses to replace it unless told to.
    """
    try:
        current = Client().get_model_version(model_name, stage)
    except (KeyError, RuntimeError, ValueError):  # nothing in that stage yet
        return None
    except Exception as exc:  # the store answered with something else: do not guess
        return Champion(version="?", accuracy=None, source=f"could not be read ({exc})")
    if running_id is not None and current.id == running_id:
        return None
    try:
        metadata = dict(current.run_metadata)
    except Exception as exc:
        return Champion(version=str(current.name), accuracy=None, source=f"unreadable ({exc})")
    value = metadata.get(CHAMPION_ACCURACY_KEY)
    source = f"{stage} version, metadata {CHAMPION_ACCURACY_KEY}"
    if value is None:
        source += " missing (not promoted by this gate)"
    figures = {
        key.removeprefix("zq_gate_"): _plain(metadata[key])
        for key in _CHAMPION_FIGURES
        if metadata.get(key) is not None
    }
    return Champion(version=str(current.name), accuracy=value, source=source, figures=figures)


def _figures(decision: GateDecision, candidate: CandidateMeasurements) -> dict[str, Any]:
    """The model-version metadata of a promoted candidate (plain types only)."""
    figures: dict[str, Any] = {
        "zq_gate_candidate": candidate.name,
        "zq_gate_stage": decision.requested_stage,
        CHAMPION_ACCURACY_KEY: candidate.accuracy,
        "zq_gate_baseline_accuracy": candidate.baseline_accuracy,
        "zq_gate_size_bytes": candidate.size_bytes,
        "zq_gate_latency_ms": dict(candidate.latency_ms) or None,
        "zq_gate_peak_memory_bytes": candidate.peak_memory_bytes,
        "zq_gate_checks": {c.name: c.reason for c in decision.checks} or None,
        "zq_gate_targets": decision.targets or None,
    }
    return {k: _plain(v) for k, v in figures.items() if v is not None}


def _promote(
    decision: GateDecision,
    model: Model,
    candidates: list[CandidateMeasurements],
    tflite_models: list[TFLiteModel] | None,
) -> GateDecision:
    """Move the running version to the decision's stage with the chosen file linked."""
    stage = decision.requested_stage
    assert stage is not None and decision.selected is not None  # only called on a pass
    index = [c.name for c in candidates].index(decision.selected)
    try:
        if tflite_models is not None:
            save_artifact(
                tflite_models[index],
                name=DEPLOYMENT_ARTIFACT,
                artifact_type=ArtifactType.SERVICE,
                materializer=TFLiteModelMaterializer,
                user_metadata={"candidate": decision.selected},
            )
        model.log_metadata(_figures(decision, candidates[index]))
        model.set_stage(stage, force=True)
    except Exception as exc:  # fail closed: a half-done promotion is reported, not hidden
        failed = replace(
            decision,
            passed=False,
            reasons=(*decision.reasons, f"promotion to {stage} failed: {exc}"),
        )
        return failed.not_promoted(f"promotion to {stage} failed ({exc})")
    return decision.promoted(stage, str(model.version))


@step(name="zq_deployment_gate", enable_cache=False, settings=STEP_SETTINGS)
def deployment_gate(
    candidates: list[CandidateMeasurements],
    # Any, not list[TFLiteModel] | None: ZenML 0.98 cannot parse an optional list annotation
    # on an input artifact (issubclass on a generic alias).
    tflite_models: Any = None,
    targets: dict[str, Any] | None = None,
    champion_margin: float = 0.0,
    replace_unreadable_champion: bool = False,
    required: list[str] | None = None,
    stage: str | None = None,
    raise_on_fail: bool = True,
) -> tuple[Annotated[GateDecision, "zq_gate_decision"], Annotated[HTMLString, "zq_gate_report"]]:
    """Check ``candidates`` against ``targets`` and promote the model version if one passes.

    ``targets`` holds :class:`zenml_quant.targets.Targets` fields (e.g. ``{"max_size_bytes":
    50000, "min_quality": 0.98}``); with none, the default floor applies (at most 1 point lost
    against the original). With ``stage`` and a ZenML ``Model`` on the pipeline, the model version
    now in that stage is the champion: the challenger may lose at most ``champion_margin``
    against it, and a champion whose accuracy cannot be read blocks promotion unless
    ``replace_unreadable_champion``. A pass then moves the running version to ``stage``, with the
    candidate's figures as metadata and its ``.tflite`` (from ``tflite_models``, in the same order
    as ``candidates``) linked as the deployment artifact ``zq_deployment_tflite``.

    The decision is logged as step metadata first. When nothing passes and ``raise_on_fail``,
    the step raises :class:`ConstraintNotMetError` listing the failed checks (the run fails);
    otherwise the decision is returned for downstream steps.
    """
    # The targets are in the metric the candidates were measured by (the dataset's, settled
    # when it was fitted to the model); a candidate measured otherwise is refused by decide().
    first = candidates[0] if candidates else None
    goal = Targets.from_dict(
        targets,
        metric=None if first is None else metric_named(first.metric, first.higher_is_better),
    )
    options = GateOptions(
        champion_margin=champion_margin,
        replace_unreadable_champion=replace_unreadable_champion,
        required=tuple(required or ()),
    )
    model = _running_model()
    champion = None
    if stage is not None and model is not None:
        champion = read_champion(model.name, stage, running_id=_version_id(model))
    decision = decide(goal, candidates, champion=champion, options=options, stage=stage)
    if (
        champion is not None
        and as_finite(champion.accuracy) is None
        and champion.accuracy is not None
    ):
        # Keep the artifact plain JSON: the odd value read is kept as text in the source.
        readable = replace(
            champion, accuracy=None, source=f"{champion.source}; read {champion.accuracy!r}"
        )
        decision = replace(decision, champion=readable)
    if tflite_models is not None and len(tflite_models) != len(candidates):
        decision = decision.not_promoted(
            f"{len(tflite_models)} files for {len(candidates)} candidates: pass one per candidate"
        )
    elif decision.passed and stage is not None:
        if model is None:
            decision = decision.not_promoted(
                "the pipeline has no ZenML model to promote; run it with "
                "model=Model(name=...) (the CLI: --model-name)"
            )
        else:
            decision = _promote(decision, model, candidates, tflite_models)

    record_metadata(
        {
            "passed": decision.passed,
            "selected": decision.selected,
            "stage": decision.stage,
            "promotion": decision.promotion,
            "checked": decision.checked,
            "reasons": list(decision.reasons),
            "failed_checks": [c.name for c in decision.failed_checks],
            "checks": {c.name: c.reason for c in decision.checks},
            "champion": None
            if champion is None
            else {"version": champion.version, "accuracy": repr(champion.accuracy)},
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
    return decision, HTMLString(decision_html(decision))


def _version_id(model: Model) -> Any:
    try:
        return model.id
    except Exception:  # a model whose version does not exist yet has no id to compare
        return None
