"""Quantization-aware training (QAT): fine-tune a ``tf_keras`` model with fake quantization.

Post-training quantization (PTQ) picks int8 ranges after the fact from a calibration set; QAT
inserts tfmot's fake-quantization ops into the model and fine-tunes it for a few epochs, so the
weights learn to live with int8 rounding and the activation ranges are learned during training.
The result is converted to an integer-only int8 TFLite file whose ranges are the ones QAT
learned, and both the QAT Keras model and the ``.tflite`` are scored on the same split.

tfmot 0.8.1 works on Keras 2 (``tf_keras``) Sequential/Functional models only, with the layers
of its default 8-bit registry. :func:`quantizable_layers` says which layers those are;
:func:`quantization_aware_training` refuses anything else up front with a message naming every
offending layer and the ``skip_layers=[...]`` that gets past it, instead of tfmot's traceback on
the first one.

Selective QAT (``layers=`` or ``skip_layers=``) leaves the other layers in float in the Keras
model. The TFLite file is still int8: the converter calibrates the skipped layers' ranges on the
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

from ._compat import is_keras3_model, tf, tf_keras

# After _compat, which chooses tf_keras before TensorFlow loads: tfmot then picks tf_keras too.
import tensorflow_model_optimization as tfmot  # isort: skip

from .convert import convert_model
from .errors import ConversionError, InvalidDatasetError, InvalidModelError, InvalidOptionError
from .evaluate import MetricFn, evaluate_keras, evaluate_tflite
from .models import check_model, input_shape, num_outputs
from .types import SPLITS, ConversionOptions, LabeledDataset, TFLiteModel

__all__ = ["QATOptions", "QATResult", "quantizable_layers", "quantization_aware_training"]

logger = logging.getLogger(__name__)

_MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")
# Activations tfmot 0.8.1's QuantizeAwareActivation can wrap inside a Dense/Conv layer (its
# _PRE_QUANT_ACTIVATIONS and _POST_QUANT_ACTIVATIONS); any other raises in quantize_apply.
_LAYER_ACTIVATIONS = frozenset({"linear", "relu", "swish", "gelu", "softmax", "sigmoid", "tanh"})
# tfmot's default layout transforms fold a BatchNormalization into the linear Conv2D,
# DepthwiseConv2D or Dense right before it; a BatchNormalization anywhere else is unsupported.
_BN_HOSTS = ("Conv2D", "DepthwiseConv2D", "Dense")
# Rewritten by tfmot's layout transforms into DepthwiseConv2D + Conv2D, both supported.
_SEPARABLE = ("SeparableConv1D", "SeparableConv2D")


@dataclass(frozen=True)
class QATOptions:
    """How the QAT model is fine-tuned.

    A few epochs at a small learning rate are enough: the weights start from the trained float
    model and only need to adapt to int8 rounding. ``early_stopping_patience`` epochs without
    improvement of ``monitor`` stop training and restore the best epoch's weights (0 turns it
    off; then the last epoch's weights are kept). ``monitor`` is one of ``val_accuracy``,
    ``val_loss``, ``accuracy``, ``loss``. ``seed`` seeds Python, NumPy and TensorFlow.
    """

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-4
    early_stopping_patience: int = 2
    monitor: str = "val_accuracy"
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked on construction, so an unusable options object never exists.
        problems = []
        if not _is_int(self.epochs) or self.epochs < 1:
            problems.append(f"epochs={self.epochs!r} (must be an integer >= 1)")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size!r} (must be an integer >= 1)")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            problems.append(f"learning_rate={self.learning_rate!r} (must be > 0, e.g. 1e-4)")
        if not _is_int(self.early_stopping_patience) or self.early_stopping_patience < 0:
            problems.append(
                f"early_stopping_patience={self.early_stopping_patience!r} "
                "(must be an integer >= 0; 0 turns early stopping off)"
            )
        if self.monitor not in _MONITORS:
            problems.append(f"monitor={self.monitor!r} (must be one of {', '.join(_MONITORS)})")
        if not _is_int(self.seed):
            problems.append(f"seed={self.seed!r} (must be an integer)")
        if problems:
            raise InvalidOptionError(f"Invalid QATOptions: {'; '.join(problems)}.")


@dataclass(frozen=True, eq=False)
class QATResult:
    """The fine-tuned QAT model, its int8 TFLite conversion and both accuracies on ``split``.

    ``quantized_layers`` are the Keras layer names (of the original model) that were annotated
    for QAT; ``float_layers`` the others, which keep float weights in ``keras_model`` and are
    calibrated by the converter in ``tflite``. ``epochs_run`` counts the epochs actually
    trained (fewer than ``QATOptions.epochs`` when early stopping fired); with early stopping
    on, ``keras_model`` holds the weights of the best epoch. ``keras_metrics`` and
    ``tflite_metrics`` carry ``metric_fn``'s value (and, for Keras, the compiled loss and
    accuracy) on ``split``.
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


def quantizable_layers(model: Any) -> tuple[list[str], list[str]]:
    """``(supported, unsupported)`` layer names under tfmot's default 8-bit scheme.

    A layer is supported when the default 8-bit registry knows its class (exact class, not
    subclasses) and its activation, or when tfmot's layout transforms absorb it: a
    BatchNormalization right after a linear Conv2D/DepthwiseConv2D/Dense is folded into it, a
    SeparableConv is split into DepthwiseConv2D + Conv2D. Custom layers, Lambda layers, nested
    models and, e.g., LayerNormalization or a standalone BatchNormalization are unsupported.
    Input layers are not listed.
    """
    _check_qat_model(model)
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
    metric_fn: MetricFn | None = None,
) -> QATResult:
    """Fine-tune ``model`` with fake quantization, convert it to int8 TFLite, score both.

    Args:
        model: a trained ``tf_keras`` Sequential/Functional model (one input, one output).
            It is not modified: QAT trains a copy.
        dataset: train split to fine-tune on, validation split for early stopping; labels are
            int class indices.
        layers: quantize only these layers (names of ``model``'s layers). ``None`` (default)
            means every layer except ``skip_layers``; with neither, the whole model goes
            through ``tfmot.quantization.keras.quantize_model``.
        skip_layers: layers to keep in float, e.g. ones tfmot cannot quantize.
        options: training knobs (:class:`QATOptions`).
        conversion: TFLite conversion knobs (calibration samples, int8 I/O, ...).
        split: the split both accuracies are measured on.
        metric_fn: an extra metric, passed to :func:`zenml_quant.evaluate.evaluate_keras` and
            ``evaluate_tflite`` (``metric_fn(labels, outputs) -> float``).

    Raises:
        InvalidModelError: a Keras 3, subclassed, unbuilt or multi-input/output model.
        InvalidOptionError: unknown or unquantizable layer names, ``layers`` and
            ``skip_layers`` both given, a bad ``split``.
        InvalidDatasetError: the data does not fit the model.
        ConversionError: the converter refused the QAT model.
    """
    options = options or QATOptions()
    if split not in SPLITS:
        raise InvalidOptionError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
    _check_qat_model(model)
    _check_data(model, dataset)
    selected = _select_layers(model, layers, skip_layers)
    names = _layer_names(model)
    whole_model = len(selected) == len(names)

    tf_keras.utils.set_random_seed(options.seed)
    qat_model = _quantize(model, selected, whole_model)
    loss = loss_for(model)
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss=loss,
        metrics=["accuracy"],
    )
    history = _fit(qat_model, dataset, options, loss)
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
    float_layers = tuple(n for n in names if n not in selected)
    if float_layers:
        count = min((conversion or ConversionOptions()).calibration_samples, len(dataset.x_train))
        note = (
            f"layer(s) {', '.join(float_layers)} were not quantization-aware trained; their "
            f"int8 ranges were calibrated on {count} train example(s), as in post-training "
            "quantization."
        )
        tflite = replace(tflite, notes=(*tflite.notes, note))

    keras_eval = evaluate_keras(qat_model, dataset, split=split, metric_fn=metric_fn)
    tflite_eval = evaluate_tflite(tflite, dataset, split=split, metric_fn=metric_fn)
    logger.info(
        "QAT of %r: %d epoch(s); %s accuracy Keras QAT %.4f, int8 TFLite %.4f (%d bytes)",
        model.name,
        epochs_run,
        split,
        keras_eval.accuracy,
        tflite_eval.accuracy,
        tflite.size_bytes,
    )
    return QATResult(
        keras_model=qat_model,
        tflite=tflite,
        quantized_layers=tuple(n for n in names if n in selected),
        float_layers=float_layers,
        history=history,
        epochs_run=epochs_run,
        keras_accuracy=keras_eval.accuracy,
        tflite_accuracy=tflite_eval.accuracy,
        split=split,
        keras_metrics=dict(keras_eval.metrics),
        tflite_metrics=dict(tflite_eval.metrics),
    )


# --- checks -------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_qat_model(model: Any) -> None:
    if is_keras3_model(model):
        raise InvalidModelError(
            f"model {model.name!r} is a Keras 3 model, but quantization-aware training needs a "
            "tf_keras (Keras 2) model: tfmot does not support Keras 3 (model-optimization#1119). "
            "Build or load the model with tf_keras (import tf_keras; tf_keras.models.load_model "
            "of a file saved by tf_keras), or use post-training quantization "
            "(convert_model(model, 'int8', ...)), which accepts Keras 3 models."
        )
    check_model(model)  # Keras model, Sequential/Functional, built, one input and one output


def _check_data(model: Any, dataset: LabeledDataset) -> None:
    # Checked here because a mismatch would otherwise surface as a TF error deep inside fit().
    expected = input_shape(model)
    got = dataset.sample_shape
    fix = (
        "fit the data to the model with zenml_quant.datasets.conform_to_model(dataset, "
        "input_shape=..., num_classes=...)"
    )
    if len(expected) != len(got) or any(e not in (None, g) for e, g in zip(expected, got)):
        raise InvalidDatasetError(
            f"The data's examples have shape {got} but model {model.name!r} expects "
            f"{expected}: {fix}."
        )
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
    """The names to annotate, after checking every name and every layer's support."""
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
    reasons = _unsupported(model, selected)
    if reasons:
        listed = "; ".join(f"{n} ({why})" for n, why in reasons.items())
        bad = list(reasons)
        if layers is not None:
            # Leave out what cannot be quantized; a batch norm whose host layer is merely not
            # selected becomes quantizable by adding the host.
            hosts = {}
            for name in bad:
                host = _bn_host(model.get_layer(name), model)
                if host is not None:
                    hosts[name] = host.name
            wanted = (set(layers) - set(bad)) | set(hosts) | set(hosts.values())
            fixed = [n for n in names if n in wanted]
            fix = f"pass layers={fixed}" if fixed else "use post-training quantization instead"
        else:
            fix = f"keep them in float: skip_layers={[*skip_layers, *bad]}"
        raise InvalidOptionError(
            f"tfmot's default 8-bit scheme cannot quantize {len(bad)} layer(s) of model "
            f"{model.name!r}: {listed}. To go on, {fix}."
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
    if cls in _SEPARABLE and type(layer).__module__.startswith("tf_keras."):
        if cls == "SeparableConv1D" and layer.padding == "causal":
            return f"{cls} with causal padding"
        return None
    if cls == "BatchNormalization" and type(layer).__module__.startswith("tf_keras."):
        host = _bn_host(layer, model)
        if host is None:
            return (
                f"{cls} not right after a linear {'/'.join(_BN_HOSTS)}: tfmot only quantizes "
                "batch normalization folded into that layer"
            )
        if host.name not in selected:
            return (
                f"{cls} folded into {host.name!r}, which is not quantized: quantize both or neither"
            )
        return None
    if not registry.supports(layer):
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


# --- quantize, train ------------------------------------------------------------------------


def _custom_objects(model: Any) -> dict[str, type]:
    # tfmot rebuilds the model from its config while transforming it; classes that are not
    # tf_keras built-ins (custom layers the user skips) must be in scope for that.
    return {
        type(layer).__name__: type(layer)
        for layer in model.layers
        if not type(layer).__module__.startswith("tf_keras.")
    }


def _quantize(model: Any, selected: set[str], whole_model: bool) -> Any:
    """A new QAT model with ``selected`` layers wrapped; the original stays untouched."""
    quantize = tfmot.quantization.keras
    scope = quantize.quantize_scope(_custom_objects(model))

    def annotate(layer: Any) -> Any:
        # A fresh copy, never the original layer: reusing it would add inbound nodes to it.
        copy = layer.__class__.from_config(layer.get_config())
        return quantize.quantize_annotate_layer(copy) if layer.name in selected else copy

    try:
        with scope:
            if whole_model:
                # tfmot's own whole-model path (annotate all, fold BatchNorm, wrap). It wraps
                # the layers of the model it is given, so give it a copy.
                copy = tf_keras.models.clone_model(model)
                copy.set_weights(model.get_weights())
                return quantize.quantize_model(copy)
            annotated = tf_keras.models.clone_model(model, clone_function=annotate)
            _copy_weights(model, annotated)
            return quantize.quantize_apply(annotated)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise _explain_tfmot_error(exc, model) from None


def _copy_weights(source: Any, target: Any) -> None:
    # clone_model re-initialises every layer; an annotated layer keeps its copy in `.layer`.
    # QuantizeAnnotate wrappers get names of their own: match layers by the wrapped name.
    by_name = {getattr(layer, "layer", layer).name: layer for layer in target.layers}
    for layer in source.layers:
        if layer.weights:
            cloned = by_name[layer.name]
            getattr(cloned, "layer", cloned).set_weights(layer.get_weights())


def _explain_tfmot_error(exc: BaseException, model: Any) -> InvalidOptionError:
    text = str(exc)
    names = _layer_names(model)
    # tfmot names the layer as "Layer <name>:<class ...> is not supported"; other messages may
    # quote a layer name, but one that lists them all names none in particular.
    named = re.search(r"Layer ([^\s:]+):", text)
    hits = [named.group(1)] if named and named.group(1) in names else []
    if not hits:
        hits = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
        hits = hits if len(hits) <= 2 else []
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    first = first[:300].rstrip(". ")
    where = f" at layer(s) {', '.join(hits)}" if hits else ""
    fix = f"skip_layers={hits}" if hits else "skip_layers=[...] naming the layer"
    return InvalidOptionError(
        f"tfmot could not prepare model {model.name!r} for quantization-aware training{where}: "
        f"{first}. Keep the layer(s) in float with {fix}, or use post-training "
        "quantization."
    )


def loss_for(model: Any) -> Any:
    """The model's compiled loss if it has one, else a cross-entropy matching its output."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    elif isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss.values()))
    if loss is not None and not isinstance(loss, (list, tuple, dict)):
        return loss
    last = model.layers[-1]
    activation = _activation_name(getattr(last, "activation", None))
    probabilities = isinstance(last, tf_keras.layers.Softmax) or activation == "softmax"
    if int(model.outputs[0].shape[-1] or 0) == 1:  # one sigmoid unit, labels 0/1
        return tf_keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
    return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


class _EpochLog(tf_keras.callbacks.Callback):
    """One log line per epoch: training runs with verbose=0."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        logger.info("QAT epoch %d/%d: %s", epoch + 1, self.epochs, shown)


def _fit(
    qat_model: Any, dataset: LabeledDataset, options: QATOptions, loss: Any
) -> dict[str, list[float]]:
    callbacks: list[Any] = [_EpochLog(options.epochs)]
    if options.early_stopping_patience > 0:
        mode = "max" if "acc" in options.monitor else "min"
        callbacks.append(
            tf_keras.callbacks.EarlyStopping(
                monitor=options.monitor,
                patience=options.early_stopping_patience,
                mode=mode,
                restore_best_weights=True,
            )
        )
    try:
        history = qat_model.fit(
            dataset.x_train,
            dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            epochs=options.epochs,
            batch_size=options.batch_size,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
    except (ValueError, tf.errors.InvalidArgumentError) as exc:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or str(loss)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise InvalidModelError(
            f"Fine-tuning the QAT model with loss {name!r} failed: {first[:200]}. QAT trains "
            "on int class labels: if the model was compiled with a one-hot loss (e.g. "
            "CategoricalCrossentropy), compile it with SparseCategoricalCrossentropy instead, "
            "or leave it uncompiled to let QAT pick one."
        ) from None
    return {k: [float(v) for v in values] for k, values in history.history.items()}
