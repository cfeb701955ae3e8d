"""Each candidate fails alone: a conversion, the mixed model or QAT that raises becomes a
failed :class:`TFLiteModel` with its reason, and the rest of the run goes on.

The core functions (``convert_model``, ``quantize_post_training``,
``quantization_aware_training``) raise on bad input, as a library should; the pipeline's steps
call these wrappers instead, so one candidate's failure is a row in the report, not a lost run.
An :class:`InvalidOptionError` still raises: an option the user got wrong (a layer name that
is not in the model, say) is theirs to fix, not a property of the candidate.
"""

from __future__ import annotations

import logging
from typing import Any

from .allocate import Allocation, allocate_precisions
from .calibration import calibrate, check_calibrated, int8_from_calibrated
from .convert import convert_model
from .errors import InvalidOptionError, ZenmlQuantError
from .ptq import quantize_post_training
from .qat import QATOptions, QATResult, quantization_aware_training
from .types import CalibratedModel, ConversionOptions, LabeledDataset, PTQResult, TFLiteModel

__all__ = [
    "allocation_candidate",
    "calibrate_candidate",
    "mixed_qat_candidate",
    "convert_candidate",
    "describe_failure",
    "failed_model",
    "ptq_candidate",
    "qat_candidate",
]

logger = logging.getLogger(__name__)


def describe_failure(exc: BaseException) -> str:
    """One line that says what went wrong: our messages as they are, others with their type."""
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, ZenmlQuantError):
        text = f"{type(exc).__name__}: {text}"
    first = text.splitlines()[0]
    return first if len(first) <= 500 else first[:497] + "..."


def failed_model(
    mode: str, reason: str, options: ConversionOptions | None = None, source_model: str = ""
) -> TFLiteModel:
    """A candidate that could not be built: no bytes, ``error`` says why."""
    return TFLiteModel(
        content=b"",
        mode=mode,
        options=options or ConversionOptions(),
        operators=(),
        inputs=(),
        outputs=(),
        source_model=source_model,
        error=reason,
    )


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", "") or "")


def _guarded(what: str, work: Any, on_failure: Any) -> Any:
    """``work()``, or ``on_failure(reason)`` when it raises anything but an option error."""
    try:
        return work()
    except InvalidOptionError:
        raise
    except Exception as exc:  # one candidate failing must not sink the others
        reason = f"{what} failed: {describe_failure(exc)}"
        logger.warning(reason)
        return on_failure(reason)


def convert_candidate(
    model: Any,
    mode: str,
    *,
    representative_data: Any,
    options: ConversionOptions | None,
    calibrated: CalibratedModel | None = None,
) -> TFLiteModel:
    """:func:`convert_model`, with a failure returned as a failed model.

    ``int8`` is quantized from ``calibrated`` when given (``model`` calibrated on
    ``representative_data`` with ``options``), so the run calibrates once.
    """

    def convert() -> TFLiteModel:
        if calibrated is not None and mode == "int8":
            check_calibrated(calibrated, model, representative_data, options)
            return int8_from_calibrated(calibrated)
        return convert_model(model, mode, representative_data=representative_data, options=options)

    return _guarded(
        f"conversion to {mode}",
        convert,
        lambda reason: failed_model(mode, reason, options, _model_name(model)),
    )


def calibrate_candidate(
    model: Any, *, representative_data: Any, options: ConversionOptions | None
) -> CalibratedModel:
    """:func:`zenml_quant.calibration.calibrate`; a failure comes back as a calibrated model
    with ``error`` set, so every int8 candidate quantized from it fails with the reason."""
    options = options or ConversionOptions()
    return _guarded(
        "calibration",
        lambda: calibrate(model, representative_data, options=options),
        lambda reason: CalibratedModel(
            content=b"",
            options=options,
            source_model=_model_name(model),
            model_fingerprint="",
            data_fingerprint="",
            samples=0,
            error=reason,
        ),
    )


def ptq_candidate(model: Any, dataset: LabeledDataset, **kwargs: Any) -> PTQResult:
    """:func:`quantize_post_training`, with a failure returned as a failed result."""
    options = kwargs.get("options") or ConversionOptions()
    return _guarded(
        "post-training quantization",
        lambda: quantize_post_training(model, dataset, **kwargs),
        lambda reason: PTQResult(
            model=failed_model("mixed", reason, options, _model_name(model)),
            status="failed",
            reason=reason,
            split=kwargs.get("split", "validation"),
        ),
    )


def qat_candidate(
    model: Any, dataset: LabeledDataset, *, options: QATOptions, **kwargs: Any
) -> QATResult | TFLiteModel:
    """:func:`quantization_aware_training`; a failure comes back as a failed model."""
    conversion = kwargs.get("conversion") or ConversionOptions()
    return _guarded(
        "quantization-aware training",
        lambda: quantization_aware_training(model, dataset, options=options, **kwargs),
        lambda reason: failed_model("qat", reason, conversion, _model_name(model)),
    )


def allocation_candidate(
    model: Any, dataset: LabeledDataset, **kwargs: Any
) -> Allocation | TFLiteModel:
    """:func:`allocate_precisions`; a failure comes back as a failed ``mixed`` model."""
    options = kwargs.get("options") or ConversionOptions()
    return _guarded(
        "per-layer precision",
        lambda: allocate_precisions(model, dataset, **kwargs),
        lambda reason: failed_model("mixed", reason, options, _model_name(model)),
    )


def batchnorm_candidate(model: Any, dataset: LabeledDataset, **kwargs: Any) -> Any:
    """:func:`zenml_quant.batchnorm.recalibrated_int8`; a failure (a model without BatchNorm
    included) comes back as a failed ``bn_int8`` model with the reason."""
    from .batchnorm import recalibrated_int8

    options = kwargs.get("options") or ConversionOptions()
    try:
        return _guarded(
            "BatchNorm re-estimation",
            lambda: recalibrated_int8(model, dataset, **kwargs),
            lambda reason: failed_model("bn_int8", reason, options, _model_name(model)),
        )
    except InvalidOptionError as exc:  # e.g. no BatchNorm layer: a row that says so
        return failed_model("bn_int8", str(exc), options, _model_name(model))


def mixed_qat_candidate(model: Any, dataset: LabeledDataset, **kwargs: Any) -> Any:
    """:func:`zenml_quant.mixed_qat.mixed_qat`; a failure comes back as a failed model."""
    from .mixed_qat import mixed_qat

    conversion = kwargs.get("conversion") or ConversionOptions()
    return _guarded(
        "int4-aware training",
        lambda: mixed_qat(model, dataset, **kwargs),
        lambda reason: failed_model("mixed_qat", reason, conversion, _model_name(model)),
    )
