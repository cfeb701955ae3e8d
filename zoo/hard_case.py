"""A "hard case" for post-training quantization: one outlier activation channel.

Full-int8 TFLite quantizes each activation tensor with a single scale (per tensor). If one
channel of a tensor spans a range hundreds of times wider than the others, that scale is so
coarse that the other channels round to a handful of levels, or to zero, and accuracy
collapses, although the float model is perfectly good. Real models show this (outlier
features in transformers, badly conditioned Dense layers); here it is made on purpose and
exactly, without changing what the Keras model computes:

In consecutive Dense layers ``A -> B`` with a ReLU or linear activation on ``A``, multiply
unit ``j``'s incoming weights and bias in ``A`` by ``s > 0`` and divide ``B``'s weights from
unit ``j`` by ``s``. Because ``relu(s * z) == s * relu(z)`` for ``s > 0`` (positive
homogeneity), ``B`` receives ``s`` times the activation through ``1 / s`` times the weight: the
same function up to float rounding, but ``A``'s output has one channel ``s`` times wider.

Keeping ``A`` and ``B`` in float (everything else int8) repairs the model, which is what a
selective (mixed-precision) quantizer must find. :func:`build_hard_case_model` trains a CNN
whose weights sit mostly in layers that stay int8 (two convolutions and a wide Dense), with the
outlier in a small ``bottleneck`` Dense followed by the ``logits`` Dense, so the repaired file
is still far smaller than the float32 one. Tests and benchmarks use it; it is not a model to
deploy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zenml_quant._compat import is_keras3_model, tf_keras
from zenml_quant._validate import as_finite
from zenml_quant.demo import compile_classifier, fit_classifier
from zenml_quant.errors import InvalidDatasetError, InvalidModelError, InvalidOptionError
from zenml_quant.types import LabeledDataset

__all__ = [
    "DEFAULT_FACTOR",
    "add_activation_outlier",
    "build_hard_case_cnn",
    "build_hard_case_model",
]

#: Default outlier factor of :func:`build_hard_case_model`. The outlier goes on the unit with
#: the widest range, so the tensor's range grows 1000x and one int8 step becomes ~4x the largest
#: value of every other channel: they all round to zero and int8 falls to chance. (With 100,
#: measured: digits loses 16 points, MNIST only 4; too fragile a margin for a test.)
DEFAULT_FACTOR = 1000.0

#: Activations ``f`` with ``f(s * z) == s * f(z)`` for every ``s > 0``.
_HOMOGENEOUS_ACTIVATIONS = ("relu", "linear")


def add_activation_outlier(
    model: tf_keras.Model, layer: str, *, unit: int = 0, factor: float = 1000.0
) -> tf_keras.Model:
    """Return a copy of `model` (tf_keras Sequential or Functional) whose `layer` (a Dense with relu or linear activation, whose output feeds exactly one Dense) has output unit `unit` scaled by `factor` and the next Dense's matching input weights scaled by 1/factor: same function, one outlier activation channel.

    The copy has the same architecture and layer names, its own weights (``model`` is left
    untouched) and is not compiled. Its outputs equal ``model``'s up to float rounding
    (relative ~1e-6). Pick a ``unit`` that is active on the data: scaling a dead ReLU unit
    (always 0) makes no outlier. The next Dense must be the only consumer of ``layer`` and
    must read nothing else; ``layer`` must not be a model output, and neither layer may be
    shared (called more than once).

    Raises :class:`InvalidOptionError` for an unknown layer name, a ``unit`` out of range or
    ``factor <= 0``, and :class:`InvalidModelError` for a model or layers the trick cannot be
    applied to.
    """
    if as_finite(factor) is None or factor <= 0:
        raise InvalidOptionError(
            f"factor={factor!r}: use a finite number > 0. relu(s*z) == s*relu(z) only holds for "
            "s > 0, so a zero or negative factor would change what the model computes."
        )
    _check_graph_model(model)
    dense_names = [lyr.name for lyr in model.layers if isinstance(lyr, tf_keras.layers.Dense)]
    try:
        first = model.get_layer(layer)
    except ValueError:
        raise InvalidOptionError(
            f"Model {model.name!r} has no layer {layer!r}: its Dense layers are "
            f"{', '.join(repr(n) for n in dense_names) or '(none)'}."
        ) from None
    if not isinstance(first, tf_keras.layers.Dense):
        raise InvalidModelError(
            f"Layer {layer!r} is a {type(first).__name__}, not a Dense layer: pick one of "
            f"{', '.join(repr(n) for n in dense_names) or '(the model has no Dense layer)'}."
        )
    activation = first.get_config().get("activation")
    if activation not in _HOMOGENEOUS_ACTIVATIONS:
        raise InvalidModelError(
            f"Layer {layer!r} has activation {activation!r}; only 'relu' or 'linear' work. The "
            "trick relies on positive homogeneity, f(s*z) == s*f(z) for s > 0, which makes "
            "scaling a unit's output by s and the next layer's weights by 1/s a no-op; "
            f"{activation!r} does not have that property (e.g. sigmoid, tanh, relu6 saturate)."
        )
    units = int(first.units)
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < units:
        raise InvalidOptionError(
            f"unit={unit!r} is out of range: layer {layer!r} has {units} units, so use an "
            f"integer from 0 to {units - 1}."
        )
    second_name = _single_dense_consumer(model, layer)

    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())  # set_weights copies: no variable is shared
    source, target = copy.get_layer(layer), copy.get_layer(second_name)
    source_weights = source.get_weights()
    source_weights[0] = source_weights[0].copy()
    source_weights[0][:, unit] *= factor  # kernel: (inputs, units)
    if first.use_bias:
        source_weights[1] = source_weights[1].copy()
        source_weights[1][unit] *= factor
    source.set_weights(source_weights)
    target_weights = target.get_weights()
    target_weights[0] = target_weights[0].copy()
    target_weights[0][unit, :] /= factor  # kernel: (inputs, units); its bias is unchanged
    target.set_weights(target_weights)
    return copy


def build_hard_case_model(
    dataset: LabeledDataset,
    *,
    epochs: int = 8,
    seed: int = 0,
    factor: float = DEFAULT_FACTOR,
    bottleneck_units: int = 16,
    batch_size: int = 64,
) -> tf_keras.Model:
    """Train a small CNN on `dataset` (e.g. conv-conv-pool-flatten-Dense(big)-Dense(bottleneck, relu, name='bottleneck')-Dense(classes, name='logits')) then apply add_activation_outlier on 'bottleneck'.

    The architecture (see :func:`build_hard_case_cnn`) puts almost all weights in ``conv1``,
    ``conv2`` and the wide ``hidden`` Dense, so keeping ``bottleneck`` and ``logits`` in float
    costs little size. The outlier goes on the bottleneck unit with the largest activation on
    the train split, so the tensor's range grows by ~``factor``. Examples of shape ``(H, W)``
    get a channel axis; flat feature vectors are refused (use
    :func:`~zenml_quant.conform.conform_to_model` to reshape them to images first).

    The returned model is compiled (Adam, sparse categorical cross-entropy on logits,
    accuracy). Measured with the defaults (seed 0) on the test split: bundled 8x8 digits, Keras
    95.3 %, plain int8 10.0 % (chance); ``bottleneck`` and ``logits`` in float, int8 elsewhere,
    95.3 % at 30 % of the float32 file. MNIST (2 epochs): 98.6 %, 9.8 %, 98.5 % at 27 %.
    Neither layer alone in float helps (10-15 %): the outlier tensor is ``bottleneck``'s
    output and ``logits``' input, so both ends must stay float.
    """
    for name, value in (("epochs", epochs), ("bottleneck_units", bottleneck_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOptionError(f"{name}={value!r}: use a whole number >= 1.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size={batch_size!r}: use a whole number >= 1.")
    x_train = dataset.x_train[..., None] if dataset.x_train.ndim == 3 else dataset.x_train
    if x_train.ndim != 4:
        raise InvalidDatasetError(
            f"The hard-case model is a CNN on images, but the examples have shape "
            f"{dataset.sample_shape}: reshape them to (height, width) or (height, width, "
            "channels), e.g. with conform_to_model(dataset, input_shape=..., num_classes=...)."
        )
    tf_keras.utils.set_random_seed(seed)
    model = build_hard_case_cnn(
        x_train.shape[1:], dataset.num_classes, bottleneck_units=bottleneck_units
    )
    fit_classifier(model, dataset, epochs=epochs, batch_size=batch_size)
    probe = tf_keras.Model(model.inputs, model.get_layer("bottleneck").output)
    activations = probe.predict(x_train, batch_size=256, verbose=0)
    unit = int(np.argmax(activations.max(axis=0)))
    hard = add_activation_outlier(model, "bottleneck", unit=unit, factor=factor)
    compile_classifier(hard)
    return hard


def build_hard_case_cnn(
    input_shape: tuple[int, ...], num_classes: int, *, bottleneck_units: int = 16
) -> tf_keras.Model:
    """The untrained hard-case architecture, named ``hard_case_cnn``.

    ``conv1`` Conv(16, 3x3, relu) -> [``pool1`` MaxPool 2x2, only for inputs of 16x16 and
    larger] -> ``conv2`` Conv(32, 3x3, relu) -> ``pool`` MaxPool 2x2 -> ``flatten`` ->
    ``hidden`` Dense(128, relu) -> ``bottleneck`` Dense(``bottleneck_units``, relu) ->
    ``logits`` Dense(``num_classes``). On 8x8 digits that is 72.7k parameters, 97 % of them
    before the bottleneck; on 28x28 MNIST 207.9k, 99 %.
    """
    layers = tf_keras.layers
    height, width = int(input_shape[0]), int(input_shape[1])
    stack: list[Any] = [
        layers.Input(tuple(int(d) for d in input_shape)),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
    ]
    if min(height, width) >= 16:  # keeps the wide Dense (and training time) small on MNIST
        stack.append(layers.MaxPooling2D(2, name="pool1"))
    stack += [
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(128, activation="relu", name="hidden"),
        layers.Dense(bottleneck_units, activation="relu", name="bottleneck"),
        layers.Dense(num_classes, name="logits"),
    ]
    return tf_keras.Sequential(stack, name="hard_case_cnn")


def _check_graph_model(model: Any) -> None:
    if is_keras3_model(model):
        raise InvalidModelError(
            f"Model {getattr(model, 'name', '?')!r} is a Keras 3 model; add_activation_outlier "
            "edits tf_keras (Keras 2) models: rebuild it with tf_keras, or save it as .h5 and "
            "load it with tf_keras.models.load_model."
        )
    if not isinstance(model, tf_keras.Model):
        raise InvalidModelError(
            f"Expected a tf_keras Sequential or Functional model, got {type(model).__name__}."
        )
    if not (isinstance(model, tf_keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise InvalidModelError(
            f"Model {model.name!r} is a subclassed model, whose wiring Keras cannot read or "
            "clone: rebuild it as a Sequential or Functional model."
        )
    if not model.built:
        raise InvalidModelError(
            f"Model {model.name!r} is not built, so its layers have no weights yet: give it an "
            "Input layer (or call model.build(input_shape)) first."
        )


def _single_dense_consumer(model: tf_keras.Model, layer: str) -> str:
    """Name of the one Dense that reads ``layer``'s output; raises unless there is exactly one."""
    config = model.get_config()
    entries = config["layers"]
    names = [entry["config"]["name"] for entry in entries]
    if isinstance(model, tf_keras.Sequential):
        position = names.index(layer)
        consumers = names[position + 1 : position + 2]
        outputs = [] if consumers else [layer]
    else:
        consumers, shared = [], {}
        for entry in entries:
            nodes = entry.get("inbound_nodes") or []
            shared[entry["config"]["name"]] = len(nodes)
            inputs = [_inbound_name(item) for node in nodes for item in _node_items(node)]
            if layer in inputs:
                consumers.append(entry["config"]["name"])
        outputs = [item[0] for item in config.get("output_layers", []) if item[0] == layer]
        for name in [layer, *consumers]:
            if shared.get(name, 0) > 1:
                raise InvalidModelError(
                    f"Layer {name!r} is shared (called {shared[name]} times): scaling its "
                    "weights would change every call. Apply the outlier to unshared layers."
                )
    if outputs:
        raise InvalidModelError(
            f"Layer {layer!r} is an output of the model, so scaling one of its units would "
            "change the model's result: pick a hidden Dense layer followed by another Dense."
        )
    if len(consumers) != 1:
        raise InvalidModelError(
            f"Layer {layer!r} feeds {len(consumers)} layers ({', '.join(consumers)}), not exactly "
            "one: the 1/factor compensation must go into a single Dense that reads it."
        )
    second = model.get_layer(consumers[0])
    if not isinstance(second, tf_keras.layers.Dense):
        raise InvalidModelError(
            f"Layer {layer!r} feeds {type(second).__name__} {second.name!r}, not a Dense layer: "
            "the 1/factor compensation goes into the next layer's input weights, so it must be "
            "a Dense that reads the output directly."
        )
    return str(second.name)


def _node_items(node: Any) -> list[Any]:
    # tf_keras serializes a node as a list of [layer_name, node_index, tensor_index, kwargs].
    return list(node) if isinstance(node, (list, tuple)) else []


def _inbound_name(item: Any) -> str:
    return str(item[0]) if isinstance(item, (list, tuple)) and item else str(item)
