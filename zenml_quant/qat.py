"""Quantization-aware training (QAT): fine-tune a ``tf_keras`` model with fake quantization.

Post-training quantization (PTQ) picks int8 ranges after the fact from a calibration set; QAT
inserts tfmot's fake-quantization ops into the model and fine-tunes it for a few epochs, so the
weights learn to live with int8 rounding and the activation ranges are learned during training.
The result is converted to an integer-only int8 TFLite file whose ranges are the ones QAT
learned, and both the QAT Keras model and the ``.tflite`` are scored on the same split.

tfmot 0.8.1 works on Keras 2 (``tf_keras``) Sequential/Functional models only, with the layers
of its default 8-bit registry. One layer it cannot annotate never sinks the run:
:func:`quantization_aware_training` leaves such layers in float and lists them, with the
reason, in :attr:`QATResult.skipped_layers` (a BatchNormalization that follows a pooling layer
instead of the convolution it would fold into, Rescaling and Normalization preprocessing
layers, Conv1D, custom layers, anything tfmot's own ``quantize_apply`` refuses).
:func:`quantizable_layers` previews the registry's verdict. A Keras 3 model is rebuilt as
``tf_keras`` from its config and weights (its outputs are checked against the original's) and
refused with a clear message only when that rebuild is impossible.

Selective QAT (``layers=`` or ``skip_layers=``) leaves the other layers in float in the Keras
model. The TFLite file is still int8: the converter calibrates the float layers' ranges on the
train split, as in PTQ (the ``.tflite``'s ``notes`` say which layers those are). tfmot also
fake-quantizes the output of a float layer that feeds a quantized one (e.g. a ReLU before a
quantized Dense), so the quantized layer trains on int8 inputs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._compat import tf, tf_keras

# After _compat, which chooses tf_keras before TensorFlow loads: tfmot then picks tf_keras too.
import tensorflow_model_optimization as tfmot  # isort: skip

from .convert import convert_model, remapper_disabled
from .errors import ConversionError, InvalidDatasetError, InvalidModelError, InvalidOptionError
from .evaluate import evaluate_keras, evaluate_tflite
from .inputs import describe_shape, fits, for_keras
from .keras3_rebuild import as_tf_keras, keras3_loss
from .metrics import METRICS, Metric
from .models import check_model, input_shapes, num_outputs, refresh_adapted_layers
from .outputs import output_names
from .tasks import dataset_metric, dataset_task
from .training import TrainingData, keep_other_outputs, loss_for, training_data
from .types import SPLITS, ConversionOptions, LabeledDataset, QATOptions, TFLiteModel

__all__ = ["QATOptions", "QATResult", "quantizable_layers", "quantization_aware_training"]

logger = logging.getLogger(__name__)

# Activations tfmot 0.8.1's QuantizeAwareActivation can wrap inside a Dense/Conv layer (its
# _PRE_QUANT_ACTIVATIONS and _POST_QUANT_ACTIVATIONS); any other raises in quantize_apply.
_LAYER_ACTIVATIONS = frozenset({"linear", "relu", "swish", "gelu", "softmax", "sigmoid", "tanh"})
# tfmot's default layout transforms fold a BatchNormalization into the linear Conv2D,
# DepthwiseConv2D or Dense right before it (a SeparableConv2D is first split into
# DepthwiseConv2D + Conv2D, so it hosts one too); a BatchNormalization anywhere else is
# unsupported. Conv1D is not in tfmot 0.8.1's registry at all, so it never hosts one.
_BN_HOSTS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
# Rewritten by tfmot's layout transforms into DepthwiseConv2D + Conv2D, both supported.
_SEPARABLE = ("SeparableConv2D",)
# How many training examples check that a Keras 3 model's tf_keras rebuild computes the same.
_PROBE_EXAMPLES = 32


@dataclass(frozen=True, eq=False)
class QATResult:
    """The fine-tuned QAT model, its int8 TFLite conversion and both accuracies on ``split``.

    ``quantized_layers`` are the Keras layer names (of the original model) that were annotated
    for QAT; ``float_layers`` the others, which keep float weights in ``keras_model`` and are
    calibrated by the converter in ``tflite``. ``skipped_layers`` are the float layers QAT
    would have annotated but tfmot's default 8-bit scheme cannot, as ``(name, reason)`` pairs
    in model order; the user's ``skip_layers`` and the layers left out of ``layers=`` are not
    in it (they are float by request). ``epochs_run`` counts the epochs actually trained (fewer
    than ``QATOptions.epochs`` when early stopping fired); with early stopping on,
    ``keras_model`` holds the weights of the best epoch. ``keras_metrics`` and
    ``tflite_metrics`` carry the compiled Keras metrics (loss, accuracy) on ``split``; the
    accuracies are values of the run's metric. ``rebuilt_from_keras3`` says the input was a Keras 3 model that QAT
    trained as its ``tf_keras`` rebuild (``keras_model`` is then a ``tf_keras`` model).
    """

    keras_model: Any
    tflite: TFLiteModel
    quantized_layers: tuple[str, ...]
    float_layers: tuple[str, ...]
    history: dict[str, list[float]]
    epochs_run: int
    keras_accuracy: float
    tflite_accuracy: float
    split: str
    keras_metrics: dict[str, float] = field(default_factory=dict)
    tflite_metrics: dict[str, float] = field(default_factory=dict)
    skipped_layers: tuple[tuple[str, str], ...] = ()
    rebuilt_from_keras3: bool = False
    #: What ``keras_accuracy`` and ``tflite_accuracy`` measure.
    metric: Metric = field(default_factory=lambda: METRICS["top1"])


def quantizable_layers(model: Any) -> tuple[list[str], list[str]]:
    """``(supported, unsupported)`` layer names under tfmot's default 8-bit scheme.

    A layer is supported when the default 8-bit registry knows its class (exact class, not
    subclasses) and its activation, or when tfmot's layout transforms absorb it: a
    BatchNormalization right after a linear Conv2D/DepthwiseConv2D/SeparableConv2D/Dense is
    folded into it, a SeparableConv2D is split into DepthwiseConv2D + Conv2D. Custom layers,
    Lambda layers, nested models, Conv1D, preprocessing layers (Rescaling, Normalization) and,
    e.g., LayerNormalization or a standalone BatchNormalization are unsupported. Input layers
    are not listed. A Keras 3 model is judged through its ``tf_keras`` rebuild (see
    :func:`quantization_aware_training`).

    This is the registry's verdict, without running tfmot; :func:`quantization_aware_training`
    also skips any further layer tfmot's ``quantize_apply`` refuses.
    """
    check_model(model)
    model, _ = as_tf_keras(model, probe=None)
    names = _layer_names(model)
    reasons = _unsupported(model, set(names))
    return [n for n in names if n not in reasons], [n for n in names if n in reasons]


def quantization_aware_training(
    model: Any,
    dataset: LabeledDataset,
    *,
    layers: Sequence[str] | None = None,
    skip_layers: Sequence[str] = (),
    options: QATOptions | None = None,
    conversion: ConversionOptions | None = None,
    split: str = "validation",
    metric: Metric | None = None,
) -> QATResult:
    """Fine-tune ``model`` with fake quantization, convert it to int8 TFLite, score both.

    Layers tfmot's default 8-bit scheme cannot annotate where they stand stay in float and are
    listed, with the reason, in :attr:`QATResult.skipped_layers`; the run goes on with the
    others. They are found in two passes: tfmot's registry and layout-transform rules (as in
    :func:`quantizable_layers`), then tfmot itself: ``quantize_apply`` is tried, and a layer it
    refuses is taken out and the rest retried (see :func:`_quantize_skipping`).

    Args:
        model: a trained Sequential/Functional model (one input, one output). A ``tf_keras``
            model is used as is; a Keras 3 model is rebuilt as ``tf_keras`` from its config and
            weights, and the rebuild's outputs are checked against the original's on a few
            training examples. The model is not modified: QAT trains a copy.
        dataset: train split to fine-tune on, validation split for early stopping. The model
            trains on the targets its task and loss need (:func:`zenml_quant.training.
            training_data`): one-hot rows for a categorical cross-entropy, class indices for
            the sparse one, float targets for regression, its own inputs for an autoencoder.
        layers: quantize only these layers (names of ``model``'s layers). ``None`` (default)
            means every layer except ``skip_layers``; with neither, the whole model goes
            through ``tfmot.quantization.keras.quantize_model``. A named layer tfmot cannot
            annotate is skipped (and listed) like any other.
        skip_layers: layers to keep in float, e.g. the most sensitive ones.
        options: training knobs (:class:`QATOptions`).
        conversion: TFLite conversion knobs (calibration samples, int8 I/O, ...).
        split: the split both accuracies are measured on.
        metric: what both models are scored by (default: the dataset's metric, top-1
            accuracy for a dataset not fitted to a task).

    Raises:
        InvalidModelError: a subclassed, unbuilt or multi-input/output model; a Keras 3 model
            that cannot be rebuilt as ``tf_keras``; a model of which tfmot can annotate no
            layer at all.
        InvalidOptionError: unknown layer names, ``layers`` and ``skip_layers`` both given,
            ``layers=`` of which tfmot can annotate none, a bad ``split``.
        InvalidDatasetError: the data does not fit the model.
        ConversionError: the converter refused the QAT model.
    """
    options = options or QATOptions()
    if split not in SPLITS:
        raise InvalidOptionError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
    check_model(model)  # Keras model, Sequential/Functional, built, one input and one output
    _check_data(model, dataset)
    source = model
    model, rebuilt = as_tf_keras(model, probe=dataset.x_train[:_PROBE_EXAMPLES])
    selected = _select_layers(model, layers, skip_layers)
    names = _layer_names(model)

    tf_keras.utils.set_random_seed(options.seed)
    qat_model, quantized, skipped = _quantize_skipping(
        model, selected, explicit=layers is not None, skip_layers=skip_layers
    )
    refresh_adapted_layers(qat_model)
    metric = metric or dataset_metric(dataset)
    data, options, monitor = compile_for_fine_tuning(
        qat_model, model, dataset, options, loss=keras3_loss(source) if rebuilt else None
    )
    history = fit_with_early_stopping(qat_model, data, options, monitor)
    epochs_run = len(next(iter(history.values()), []))

    # The converter takes the int8 ranges QAT learned from the model's fake-quant ops (checked:
    # the output scale is the trained post_activation range / 255, the same scales as a
    # conversion without calibration data); the calibration data only fills in ranges for
    # layers QAT left in float.
    tflite = convert_model(
        qat_model, "int8", representative_data=dataset.x_train, options=conversion
    )
    if not tflite.ok:
        raise ConversionError(f"The int8 conversion of the QAT model is unusable: {tflite.error}")
    notes = []
    if rebuilt:
        notes.append(
            f"model {source.name!r} is a Keras 3 model: QAT trained its tf_keras rebuild (same "
            "config and weights, outputs checked equal), as tfmot needs tf_keras."
        )
    if skipped:
        listed = "; ".join(f"{n} ({why})" for n, why in skipped.items())
        notes.append(f"QAT skipped layer(s) tfmot cannot quantize, left in float: {listed}.")
    float_layers = tuple(n for n in names if n not in quantized)
    if float_layers:
        count = min((conversion or ConversionOptions()).calibration_samples, len(dataset.x_train))
        notes.append(
            f"layer(s) {', '.join(float_layers)} were not quantization-aware trained; their "
            f"int8 ranges were calibrated on {count} train example(s), as in post-training "
            "quantization."
        )
    if notes:
        tflite = replace(tflite, notes=(*tflite.notes, *notes))

    keras_eval = evaluate_keras(qat_model, dataset, split=split, metric=metric)
    tflite_eval = evaluate_tflite(tflite, dataset, split=split, metric=metric)
    logger.info(
        "QAT of %r (%s): %d epoch(s); %s %s Keras QAT %.4f, int8 TFLite %.4f (%d bytes)",
        model.name,
        data.note,
        epochs_run,
        split,
        metric.label,
        keras_eval.accuracy,
        tflite_eval.accuracy,
        tflite.size_bytes,
    )
    return QATResult(
        keras_model=qat_model,
        tflite=tflite,
        quantized_layers=tuple(n for n in names if n in quantized),
        float_layers=float_layers,
        history=history,
        epochs_run=epochs_run,
        keras_accuracy=keras_eval.accuracy,
        tflite_accuracy=tflite_eval.accuracy,
        split=split,
        keras_metrics=dict(keras_eval.metrics),
        tflite_metrics=dict(tflite_eval.metrics),
        skipped_layers=tuple((n, skipped[n]) for n in names if n in skipped),
        rebuilt_from_keras3=rebuilt,
        metric=metric,
    )


# --- checks -------------------------------------------------------------------------------


def _check_data(model: Any, dataset: LabeledDataset) -> None:
    # Checked here because a mismatch would otherwise surface as a TF error deep inside fit().
    shapes = input_shapes(model)
    fix = "fit the data to the model with zenml_quant.conform.fit_to_model(model, dataset)"
    if not fits(dataset.x_train, shapes):
        expected = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InvalidDatasetError(
            f"The data's examples have shape {describe_shape(dataset.x_train)} but model "
            f"{model.name!r} expects {expected}: {fix}."
        )
    if dataset_task(dataset) not in ("classification", "binary"):
        return  # regression targets and autoencoder labels are not class indices
    outputs = num_outputs(model)
    classes = 2 if outputs == 1 else outputs  # one sigmoid unit scores labels 0 and 1
    top = max(int(y.max()) for y in (dataset.y_train, dataset.y_val, dataset.y_test))
    if top >= classes:
        raise InvalidDatasetError(
            f"The data has label {top} but model {model.name!r} has {outputs} output(s), "
            f"which score labels 0..{classes - 1}: {fix}, or pass the matching model."
        )


def _layer_names(model: Any) -> list[str]:
    return [
        layer.name for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)
    ]


def _select_layers(
    model: Any, layers: Sequence[str] | None, skip_layers: Sequence[str]
) -> set[str]:
    """The names the user asks to annotate, after checking every name.

    Whether tfmot can annotate them is decided later, by :func:`_quantize_skipping`.
    """
    if isinstance(layers, str) or isinstance(skip_layers, str):
        raise InvalidOptionError(
            "layers and skip_layers take a list of layer names, not a single string: "
            "pass e.g. skip_layers=['my_layer']."
        )
    skip_layers = list(skip_layers or ())
    if layers is not None and skip_layers:
        raise InvalidOptionError(
            "Pass either layers= (quantize only these) or skip_layers= (quantize all but "
            "these), not both."
        )
    names = _layer_names(model)
    asked = list(layers) if layers is not None else skip_layers
    which = "layers" if layers is not None else "skip_layers"
    if unknown := [n for n in dict.fromkeys(asked) if n not in names]:
        raise InvalidOptionError(
            f"{which} names layer(s) {unknown} that model {model.name!r} does not have; its "
            f"layers are: {names}."
        )
    if layers is not None and not layers:
        raise InvalidOptionError(
            "layers=[] selects nothing to quantize: name at least one layer, or pass "
            "layers=None to quantize the whole model."
        )
    selected = set(layers) if layers is not None else set(names) - set(skip_layers)
    if not selected:
        raise InvalidOptionError(
            f"skip_layers skips every layer of model {model.name!r}: nothing is left to "
            "quantize; skip fewer layers."
        )
    return selected


def _unsupported(model: Any, selected: set[str]) -> dict[str, str]:
    """``{name: reason}`` for the ``selected`` layers tfmot cannot quantize, in model order."""
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    reasons = {}
    for layer in model.layers:
        if layer.name not in selected:
            continue
        why = _why_unsupported(layer, registry, model, selected)
        if why:
            reasons[layer.name] = why
    return reasons


def _why_unsupported(layer: Any, registry: Any, model: Any, selected: set[str]) -> str | None:
    cls = type(layer).__name__
    if isinstance(layer, tf_keras.Model):
        return f"{cls}: a nested model; tfmot quantizes only flat models"
    builtin = type(layer).__module__.startswith("tf_keras.")
    if cls in _SEPARABLE and builtin:
        return None
    if cls == "SeparableConv1D" and builtin:
        # Checked with tfmot 0.8.1 on tf_keras 2.21: its layout transform rewrites the layer
        # with Python-lambda Lambda layers, which tf_keras refuses to rebuild in safe mode.
        return (
            f"{cls}: tfmot rewrites it with Lambda layers, which tf_keras refuses to "
            "deserialize in safe mode"
        )
    if cls == "BatchNormalization" and builtin:
        host = _bn_host(layer, model)
        if host is None:
            inbound = _neighbours(layer, model, "inbound")
            after = (
                f" (it follows {inbound[0].name!r}, a {type(inbound[0]).__name__})"
                if len(inbound) == 1
                else ""
            )
            return (
                f"{cls} not right after a linear {'/'.join(_BN_HOSTS)}{after}: tfmot only "
                "quantizes batch normalization folded into that layer"
            )
        if host.name not in selected:
            return (
                f"{cls} folded into {host.name!r}, which is not quantized: quantize both or neither"
            )
        return None
    if not registry.supports(layer):
        if builtin and ".preprocessing." in type(layer).__module__:
            return f"{cls}: a preprocessing layer, not in tfmot's default 8-bit registry"
        return f"{cls}: not in tfmot's default 8-bit registry (a custom or unsupported layer)"
    if isinstance(layer, tf_keras.layers.Activation):
        try:  # the registry's Activation config decides by the function's name
            registry.get_quantize_config(layer).get_output_quantizers(layer)
        except (ValueError, RuntimeError):
            return f"{cls} with activation {_activation_name(layer.activation)!r}"
        return None
    activation = getattr(layer, "activation", None)
    if activation is not None and _activation_name(activation) not in _LAYER_ACTIVATIONS:
        return f"{cls} with activation {_activation_name(activation)!r}"
    return None


def _activation_name(activation: Any) -> str:
    return str(getattr(activation, "__name__", type(activation).__name__))


def _bn_host(bn: Any, model: Any) -> Any | None:
    """The linear Conv2D/DepthwiseConv2D/Dense whose only consumer is ``bn``, if any."""
    inbound = _neighbours(bn, model, "inbound")
    if len(inbound) != 1:
        return None
    host = inbound[0]
    if type(host).__name__ not in _BN_HOSTS or not type(host).__module__.startswith("tf_keras."):
        return None
    if _activation_name(getattr(host, "activation", None)) != "linear":
        return None
    # tfmot's fold pattern only matches when the batch norm is the host's single consumer.
    return host if _neighbours(host, model, "outbound") == [bn] else None


def _neighbours(layer: Any, model: Any, direction: str) -> list[Any]:
    """The layers feeding (``inbound``) or fed by (``outbound``) ``layer`` inside ``model``.

    A layer object can be part of several models; only nodes of ``model``'s own graph count.
    tf_keras keys them as ``<layer name>_ib-<index of the node in the layer's inbound nodes>``.
    """

    def in_model(target: Any, node: Any) -> bool:
        index = target._inbound_nodes.index(node)
        return f"{target.name}_ib-{index}" in model._network_nodes

    if direction == "inbound":
        return [
            parent
            for node in layer._inbound_nodes
            if in_model(layer, node)
            for parent in tf.nest.flatten(node.inbound_layers)
        ]
    return [
        node.outbound_layer for node in layer._outbound_nodes if in_model(node.outbound_layer, node)
    ]


# --- quantize, skipping what tfmot refuses -----------------------------------------------------

# After this many refusals that name no layer, tfmot's trouble is taken to be with the model as
# a whole rather than with single layers, and QAT stops instead of skipping layer after layer.
_MAX_UNNAMED_REFUSALS = 8


def _quantize_skipping(
    model: Any, selected: set[str], *, explicit: bool, skip_layers: Sequence[str]
) -> tuple[Any, list[str], dict[str, str]]:
    """Annotate as many ``selected`` layers as tfmot accepts: ``(qat_model, quantized, skipped)``.

    ``skipped`` maps each selected layer left in float to the reason. Two passes decide:

    1. tfmot's registry and layout-transform rules (:func:`_unsupported`): one cheap pass over
       the model that catches the usual cases (a batch norm after pooling, preprocessing
       layers, Conv1D, custom layers, unsupported activations) with a readable reason each.
    2. tfmot itself, the final judge: ``quantize_apply`` is tried on what is left; if it raises,
       the layer it refused is taken out, pass 1 runs again (a batch norm whose host just went
       cannot fold any more) and tfmot is retried. The layer is the one tfmot's message names
       ("Layer <name>:..."), or else the one :func:`_culprit` finds by bisection.

    Asking tfmot instead of keeping a complete list of our own stays right when tfmot's rules
    change; pass 1 only saves attempts and words the reasons. The loop is bounded and
    deterministic: every refusal removes at least one layer, so there are at most
    ``len(selected)`` retries (plus about log2(len(selected)) bisection attempts for a refusal
    that names no layer, and at most ``_MAX_UNNAMED_REFUSALS`` of those), always in the model's
    layer order.
    """
    names = _layer_names(model)
    current = [n for n in names if n in selected]
    skipped: dict[str, str] = {}
    unnamed = 0

    def screen() -> None:
        for name, why in _unsupported(model, set(current)).items():
            skipped[name] = why
            current.remove(name)

    screen()
    while current:
        qat_model, error = _attempt(model, current)
        if error is None:
            for name, why in skipped.items():
                logger.warning("QAT leaves layer %r of %r in float: %s", name, model.name, why)
            return qat_model, current, skipped
        name, why, named = _culprit(model, current, error)
        unnamed += not named
        if unnamed > _MAX_UNNAMED_REFUSALS:
            raise InvalidModelError(
                f"tfmot refused {unnamed} layers of model {model.name!r} without naming one "
                f"(last: {why}); this looks like a problem with the whole model, not with single "
                "layers. Use post-training quantization (convert_model(model, 'int8', ...)) "
                "instead."
            )
        skipped[name] = why
        current.remove(name)
        screen()
    raise _nothing_left(model, skipped, explicit=explicit, skip_layers=skip_layers)


def _attempt(model: Any, annotate: list[str]) -> tuple[Any, None] | tuple[None, Exception]:
    """``(qat_model, None)`` when tfmot quantizes ``annotate``, else ``(None, its error)``."""
    try:
        whole = len(annotate) == len(_layer_names(model))
        return _quantize(model, set(annotate), whole), None
    except Exception as exc:  # noqa: BLE001 - tfmot raises ValueError, RuntimeError, TypeError,
        # AttributeError, ... from deep inside its transforms; each means "not this set".
        return None, exc


def _culprit(model: Any, current: list[str], error: Exception) -> tuple[str, str, bool]:
    """``(layer, reason, named)``: the layer of ``current`` that made tfmot raise ``error``.

    tfmot names the layer it refuses in ``quantize_apply`` ("Layer <name>:<class> is not
    supported"). Other errors (from its layout transforms, a quantize config, ...) name none:
    then the shortest prefix of ``current`` (in model order, so a batch norm's host comes with
    it) that tfmot still refuses is found by bisection, about log2(len(current)) attempts, and
    its last layer is the culprit.
    """
    named = re.search(r"Layer ([^\s:]+):", str(error))
    if named and named.group(1) in current:
        return named.group(1), _tfmot_reason(error), True
    clone_error = _clone_error(model)
    if clone_error is not None:
        # Every attempt copies the model first: blaming single layers would go nowhere.
        raise InvalidModelError(
            f"model {model.name!r} cannot be copied for quantization-aware training "
            f"({clone_error}). QAT trains a copy rebuilt from each layer's get_config(): give "
            "custom layers a complete get_config(), or use post-training quantization "
            "(convert_model(model, 'int8', ...))."
        )
    low, high, high_error = 1, len(current), error  # current[:high] is known to fail
    while low < high:
        middle = (low + high) // 2
        _, middle_error = _attempt(model, current[:middle])
        if middle_error is None:
            low = middle + 1
        else:
            high, high_error = middle, middle_error
    return current[high - 1], _tfmot_reason(high_error), False


def _clone_error(model: Any) -> str | None:
    """Why tf_keras cannot clone ``model`` (with its custom classes in scope), or None."""
    try:
        with tfmot.quantization.keras.quantize_scope(_custom_objects(model)):
            tf_keras.models.clone_model(model)
    except Exception as exc:  # noqa: BLE001 - any failure means the model cannot be copied
        return _first_line(exc)
    return None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {text[:limit].rstrip('. ')}"


def _tfmot_reason(exc: BaseException) -> str:
    """A one-line reason from a tfmot error, without its advice to write a QuantizeConfig."""
    text = re.split(r"\.\s+You can\b", _first_line(exc, limit=400))[0]
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)  # the class name is enough
    return f"tfmot's quantize_apply refused it ({text[:200].rstrip('. ')})"


def _nothing_left(
    model: Any, skipped: dict[str, str], *, explicit: bool, skip_layers: Sequence[str]
) -> InvalidOptionError | InvalidModelError:
    """The error for a model (or ``layers=`` selection) of which tfmot annotates no layer."""
    names = _layer_names(model)
    listed = "; ".join(f"{n} ({why})" for n, why in skipped.items())
    if explicit:
        # A batch norm whose host was merely not selected becomes quantizable with the host.
        hosts = {}
        for name in skipped:
            host = _bn_host(model.get_layer(name), model)
            if host is not None and host.name not in skipped:
                hosts[name] = host.name
        wanted = set(hosts) | set(hosts.values())
        fixed = [n for n in names if n in wanted]
        fix = (
            f"pass layers={fixed}"
            if fixed
            else f"name other layers in layers= (skip_layers={list(skipped)} quantizes every "
            "other layer), or use post-training quantization"
        )
        return InvalidOptionError(
            f"tfmot's default 8-bit scheme cannot annotate any of the layers selected for "
            f"quantization-aware training of model {model.name!r}: {listed}. To go on, {fix}."
        )
    fewer = ", or skip fewer layers" if skip_layers else ""
    return InvalidModelError(
        f"tfmot's default 8-bit scheme cannot annotate any layer of model {model.name!r} for "
        f"quantization-aware training: {listed}. Use post-training quantization "
        f"(convert_model(model, 'int8', ...)) instead{fewer}."
    )


def _custom_objects(model: Any) -> dict[str, type]:
    # tfmot rebuilds the model from its config while transforming it; classes that are not
    # tf_keras built-ins (custom layers the user skips) must be in scope for that.
    return {
        type(layer).__name__: type(layer)
        for layer in model.layers
        if not type(layer).__module__.startswith("tf_keras.")
    }


def _quantize(model: Any, selected: set[str], whole_model: bool) -> Any:
    """A new QAT model with ``selected`` layers wrapped; the original stays untouched.

    Raises whatever tfmot raises; :func:`_quantize_skipping` decides what to do about it.
    """
    quantize = tfmot.quantization.keras

    def annotate(layer: Any) -> Any:
        # A fresh copy, never the original layer: reusing it would add inbound nodes to it.
        copy = layer.__class__.from_config(layer.get_config())
        return quantize.quantize_annotate_layer(copy) if layer.name in selected else copy

    with quantize.quantize_scope(_custom_objects(model)):
        if whole_model:
            # tfmot's own whole-model path (annotate all, fold BatchNorm, wrap). It wraps the
            # layers of the model it is given, so give it a copy.
            copy = tf_keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            return quantize.quantize_model(copy)
        annotated = tf_keras.models.clone_model(model, clone_function=annotate)
        _copy_weights(model, annotated)
        return quantize.quantize_apply(annotated)


def _copy_weights(source: Any, target: Any) -> None:
    # clone_model re-initialises every layer; an annotated layer keeps its copy in `.layer`.
    # QuantizeAnnotate wrappers get names of their own: match layers by the wrapped name.
    by_name = {getattr(layer, "layer", layer).name: layer for layer in target.layers}
    for layer in source.layers:
        if layer.weights:
            cloned = by_name[layer.name]
            getattr(cloned, "layer", cloned).set_weights(layer.get_weights())


# --- train -----------------------------------------------------------------------------------


class _EpochLog(tf_keras.callbacks.Callback):
    """One log line per epoch: training runs with verbose=0."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        logger.info("QAT epoch %d/%d: %s", epoch + 1, self.epochs, shown)


def compile_for_fine_tuning(
    qat_model: Any, model: Any, dataset: LabeledDataset, options: QATOptions, *, loss: Any = None
) -> tuple[TrainingData, QATOptions, str]:
    """Compile ``qat_model`` (a fake-quantized copy of ``model``) for its task; the training
    data, the options (monitoring the validation loss where there is no accuracy) and the
    name Keras logs the monitored figure under."""
    task = dataset_task(dataset)
    data = training_data(
        model,
        task,
        dataset.x_train,
        dataset.y_train,
        dataset.x_val,
        dataset.y_val,
        loss=loss or loss_for(model, task),
    )
    data = keep_other_outputs(model, model, data)  # several outputs: the rest kept as they were
    classifier = task in ("classification", "binary")
    heads = output_names(qat_model)
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss=data.loss,
        # Accuracy of the scored output only; Keras then logs it as val_<output>_accuracy.
        metrics=(["accuracy"] if len(heads) == 1 else {heads[0]: ["accuracy"]})
        if classifier
        else [],
    )
    if not classifier and "acc" in options.monitor:
        # Regression and autoencoders have no accuracy to watch: stop on the validation loss.
        options = replace(options, monitor="val_loss")
    monitor = options.monitor
    if len(heads) > 1:  # Keras logs each output's figures under its name
        monitor = monitor.replace("accuracy", f"{heads[0]}_accuracy")
    return data, options, monitor


def fit_with_early_stopping(
    qat_model: Any, data: TrainingData, options: QATOptions, monitor: str
) -> dict[str, list[float]]:
    """Fit ``qat_model`` (compiled) on ``data`` as ``options`` say; the history by metric.

    With early stopping on, the best epoch of ``monitor`` is restored. A loss that does not take
    the targets raises :class:`InvalidModelError` naming it.
    """
    callbacks: list[Any] = [_EpochLog(options.epochs)]
    if options.early_stopping_patience > 0:
        mode = "max" if "acc" in monitor else "min"
        callbacks.append(
            tf_keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=options.early_stopping_patience,
                mode=mode,
                restore_best_weights=True,
            )
        )
    try:
        with remapper_disabled():  # oneDNN cannot run some fused BatchNorm activations
            history = qat_model.fit(
                for_keras(data.x_train),
                data.y_train,
                validation_data=(for_keras(data.x_val), data.y_val),
                epochs=options.epochs,
                batch_size=options.batch_size,
                callbacks=callbacks,
                shuffle=True,
                verbose=0,
            )
    except (ValueError, tf.errors.InvalidArgumentError) as exc:
        loss = data.loss
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or str(loss)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise InvalidModelError(
            f"Fine-tuning the QAT model with loss {name!r} on {data.note} failed: "
            f"{first[:200]}. Compile the model with a loss that takes these targets, or leave "
            "it uncompiled to let QAT pick one for its task."
        ) from None
    return {k: [float(v) for v in values] for k, values in history.history.items()}
