"""Reusable pipeline definitions built from the plugin's steps."""

from __future__ import annotations

from zenml import pipeline
from zenml.enums import ExecutionMode

from .steps import (
    compare_candidates,
    convert_to_tflite,
    evaluate_baseline,
    evaluate_tflite_model,
    load_keras_model,
    load_labeled_dataset,
    profile_sensitivity,
    quantization_aware_training,
    quantize_post_training,
)

__all__ = ["compress_pipeline"]


# Fail fast: nothing downstream of a model or dataset that did not load is worth running, and
# the local orchestrator then re-raises the step's own error (with its actionable message).
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def compress_pipeline(
    model_path: str,
    data_source: str = "digits",
    modes: tuple[str, ...] = ("float32", "int8"),
    split: str = "test",
    scale: float = 1 / 255,
    offset: float = 0.0,
    allow_unsafe: bool = False,
    metric: str | None = None,
    sensitivity_mode: str | None = "fast",
    max_accuracy_drop: float | None = 0.01,
    relative_drop: bool = False,
    qat: bool = False,
) -> None:
    """load -> sensitivity -> convert / quantize / QAT -> baseline and evaluate -> comparison.

    Candidates: one per ``modes`` entry (step ids ``convert_<mode>``, ``evaluate_<mode>``);
    ``mixed``, the accuracy-controlled int8 model with the fewest float layers whose drop on
    the validation split is at most ``max_accuracy_drop`` (``quantize_mixed``; None skips it);
    and ``qat``, quantization-aware training converted to int8, when ``qat`` is set
    (``quantization_aware_training``). ``sensitivity_mode`` (``"fast"``, ``"exhaustive"`` or
    None) profiles the layers first; accuracy control then tries them in that order. A YAML
    config sets step options by id, e.g. ``steps: {convert_int8: {parameters:
    {calibration_samples: 1000}}}``. ``metric`` names an extra ``(labels, outputs) -> float``
    function, ``"module:function"``, scored on the baseline and on every candidate.
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    dataset = load_labeled_dataset(data_source, model=model, scale=scale, offset=offset)
    # The baseline needs the float32 file (size, peak memory) and so does the float32
    # candidate: convert once and share it.
    float_model = convert_to_tflite(model, dataset, mode="float32", id="convert_float32")
    baseline, _, _ = evaluate_baseline(
        model, dataset, float_model=float_model, split=split, metric=metric
    )
    candidates = []
    for mode in modes:
        tflite = (
            float_model
            if mode == "float32"
            else convert_to_tflite(model, dataset, mode=mode, id=f"convert_{mode}")
        )
        candidates.append(
            evaluate_tflite_model(
                tflite, dataset, split=split, name=mode, metric=metric, id=f"evaluate_{mode}"
            )
        )
    sensitivity = None
    if sensitivity_mode is not None:
        sensitivity, _ = profile_sensitivity(model, dataset, mode=sensitivity_mode)
    if max_accuracy_drop is not None:
        mixed, _, _ = quantize_post_training(
            model,
            dataset,
            sensitivity=sensitivity,
            max_accuracy_drop=max_accuracy_drop,
            relative_drop=relative_drop,
            id="quantize_mixed",
        )
        candidates.append(
            evaluate_tflite_model(
                mixed, dataset, split=split, name="mixed", metric=metric, id="evaluate_mixed"
            )
        )
    if qat:
        qat_tflite, _, _ = quantization_aware_training(model, dataset)
        candidates.append(
            evaluate_tflite_model(
                qat_tflite, dataset, split=split, name="qat", metric=metric, id="evaluate_qat"
            )
        )
    compare_candidates(baseline, candidates)
