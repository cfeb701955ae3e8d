"""Keras 3 models rebuilt as ``tf_keras`` (Keras 2), for tfmot, which works on Keras 2 only.

The rebuild walks the Keras 3 config layer by layer, creates the tf_keras twin of each layer
with the arguments tf_keras knows, copies the weights, and checks on a probe batch that the
twin computes what the original does. Written by hand because neither Keras nor tfmot converts
between the two (model-optimization#1119); anything it cannot rebuild faithfully (custom or
nested layers, options tf_keras lacks, different outputs) raises with the reason.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from ._compat import is_keras3_model, keras3, tf, tf_keras
from .errors import InvalidModelError
from .inputs import for_keras
from .models import input_shape

__all__ = ["as_tf_keras", "keras3_loss"]

logger = logging.getLogger(__name__)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {text[:limit].rstrip('. ')}"


# Keyword arguments every tf_keras layer takes through **kwargs (tf_keras's Layer.__init__).
_BASE_LAYER_KWARGS = frozenset(
    {
        "name",
        "trainable",
        "dtype",
        "dynamic",
        "input_dim",
        "input_shape",
        "batch_input_shape",
        "batch_size",
        "weights",
        "activity_regularizer",
        "autocast",
        "implementation",
    }
)


class _RebuildError(Exception):
    """Why a Keras 3 model has no tf_keras twin; it becomes the InvalidModelError's reason."""


def as_tf_keras(model: Any, probe: np.ndarray | None) -> tuple[Any, bool]:
    """``(model, False)`` for a ``tf_keras`` model, ``(its tf_keras rebuild, True)`` for Keras 3.

    tfmot only annotates ``tf_keras`` layers, and a Keras 3 model's config cannot be loaded by
    ``tf_keras`` as it is (``batch_shape``, ``DTypePolicy`` objects, a different node format),
    so the rebuild translates it layer by layer: every layer must be a built-in Keras layer
    whose tf_keras counterpart takes the same options, and the weights are copied layer by
    layer. The rebuild must then compute what the original computes on ``probe`` (a few
    examples; random ones when None), or it is refused.

    Raises:
        InvalidModelError: the rebuild failed, saying why and how to get a tf_keras model.
    """
    if not is_keras3_model(model):
        return model, False
    try:
        rebuilt = _rebuild_keras3(model)
        _check_same_outputs(model, rebuilt, probe)
    except Exception as exc:  # noqa: BLE001 - tf_keras raises TypeError, ValueError, KeyError...
        reason = str(exc) if isinstance(exc, _RebuildError) else _first_line(exc)
        raise InvalidModelError(
            f"model {model.name!r} is a Keras 3 model, and rebuilding it as tf_keras from its "
            f"config and weights failed: {reason}. Quantization-aware training and the search need "
            "a tf_keras (Keras 2) model: tfmot does not support Keras 3 (model-optimization#1119). Build "
            "or load the model with tf_keras (import tf_keras; tf_keras.models.load_model of a "
            "file saved by tf_keras), or use post-training quantization "
            "(convert_model(model, 'int8', ...)), which accepts Keras 3 models."
        ) from None
    logger.info("Keras 3 model %r rebuilt as tf_keras for QAT", model.name)
    return rebuilt, True


def _rebuild_keras3(model: Any) -> Any:
    """A ``tf_keras`` model with the layers, names, graph and weights of Keras 3 ``model``."""
    config = model.get_config()
    if isinstance(model, keras3.Sequential):
        rebuilt = _rebuild_sequential(config)
    else:
        rebuilt = _rebuild_functional(config)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:  # set_weights checks the count and every shape
            rebuilt.get_layer(layer.name).set_weights(weights)
    return rebuilt


def _rebuild_sequential(config: dict[str, Any]) -> Any:
    entries = list(config["layers"])
    if entries and entries[0]["class_name"] == "InputLayer":
        first = entries.pop(0)["config"]
        inputs = _tf_keras_input(first)
    elif config.get("build_input_shape"):
        inputs = tf_keras.Input(batch_shape=tuple(config["build_input_shape"]))
    else:
        raise _RebuildError("it has no input shape")
    layers = [_tf_keras_layer(entry) for entry in entries]
    return tf_keras.Sequential([inputs, *layers], name=config["name"])


def _rebuild_functional(config: dict[str, Any]) -> Any:
    # Keras 3 records each call of a layer as {"args": [...], "kwargs": {...}} with its input
    # tensors as {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node,
    # tensor]}}; calling the tf_keras layers the same way rebuilds the graph. Outputs are keyed
    # by (layer name, index of the call in the config, output index), as keras_history counts.
    tensors: dict[tuple[str, int, int], Any] = {}
    pending = []
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if entry["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = _tf_keras_input(entry["config"])
            continue
        layer = _tf_keras_layer(entry)
        pending += [(layer, name, i, node) for i, node in enumerate(entry["inbound_nodes"])]
    while pending:
        waiting = []
        for layer, name, index, node in pending:
            try:
                args = _with_tensors(list(node.get("args", [])), tensors)
                kwargs = {
                    key: _with_tensors(value, tensors)
                    for key, value in node.get("kwargs", {}).items()
                    if value is not None  # e.g. mask=None, which tf_keras layers may not take
                }
            except KeyError:  # an input of this call is not built yet
                waiting.append((layer, name, index, node))
                continue
            outputs = layer(*args, **kwargs)
            for position, output in enumerate(tf.nest.flatten(outputs)):
                tensors[(name, index, position)] = output
        if len(waiting) == len(pending):
            raise _RebuildError(f"its layer graph cannot be followed at {waiting[0][1]!r}")
        pending = waiting

    def endpoints(refs: Any) -> list[Any]:
        refs = [refs] if refs and isinstance(refs[0], str) else refs  # one [name, node, index]
        return [tensors[(str(n), int(i), int(j))] for n, i, j in refs]

    inputs = endpoints(config["input_layers"])
    (outputs,) = endpoints(config["output_layers"])  # check_model allows one output
    return tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=config["name"])


def _with_tensors(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """``value`` with each serialized Keras 3 tensor replaced by its rebuilt tf_keras tensor."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return tensors[(str(name), int(node), int(index))]
    if isinstance(value, (list, tuple)):
        return [_with_tensors(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _with_tensors(v, tensors) for k, v in value.items()}
    return value


def _tf_keras_input(config: dict[str, Any]) -> Any:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None:
        raise _RebuildError(f"input {config.get('name')!r} has no shape")
    return tf_keras.Input(
        batch_shape=tuple(shape), dtype=_dtype_name(config.get("dtype")), name=config["name"]
    )


def _tf_keras_layer(entry: dict[str, Any]) -> Any:
    """The tf_keras twin of one serialized Keras 3 layer (without weights)."""
    cls = entry["class_name"]
    name = entry["config"].get("name", cls)
    twin = getattr(tf_keras.layers, cls, None)
    builtin = str(entry.get("module") or "").startswith("keras.") and entry.get(
        "registered_name"
    ) in (None, cls)
    if (
        not builtin
        or not isinstance(twin, type)
        or not issubclass(twin, tf_keras.layers.Layer)
        or issubclass(twin, tf_keras.Model)
    ):
        raise _RebuildError(
            f"layer {name!r} ({cls}) is not a built-in Keras layer with a tf_keras counterpart "
            "(custom layers and nested models need rewriting in tf_keras)"
        )
    accepted = _init_parameters(twin) | _BASE_LAYER_KWARGS
    config = {}
    for key, value in entry["config"].items():
        if key.endswith("_initializer"):
            # The weights are copied over right after, so initializers never run; Keras 3's
            # initializer configs also carry options tf_keras lacks (input_axes, ...).
            continue
        if key == "dtype":
            value = _dtype_name(value)
        if key not in accepted:
            if value is None or value is False:  # a Keras 3 option left off (lora_rank, ...)
                continue
            raise _RebuildError(
                f"layer {name!r} ({cls}) sets {key}={value!r}, which tf_keras's {cls} lacks"
            )
        config[key] = value
    layer_class: Any = twin  # (the checks above narrow it to a plain `type` for mypy)
    return layer_class.from_config(config)


def _dtype_name(dtype: Any) -> Any:
    # Keras 3 serializes a layer's dtype as a DTypePolicy; tf_keras takes the policy's name
    # ("float32", "mixed_float16"). Quantized Keras 3 policies have no tf_keras counterpart.
    if isinstance(dtype, dict):
        if dtype.get("class_name") != "DTypePolicy":
            raise _RebuildError(f"dtype policy {dtype.get('class_name')} has no tf_keras twin")
        return dtype["config"]["name"]
    return dtype


def _init_parameters(cls: type) -> set[str]:
    """The keyword parameters of ``cls.__init__`` and its base classes' ``__init__``."""
    names = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self"}


def _check_same_outputs(model: Any, rebuilt: Any, probe: np.ndarray | None) -> None:
    if probe is None:
        shape = input_shape(model)
        known = [d for d in shape if d is not None]
        if len(known) < len(shape):
            return  # no data to compare on; QAT itself always passes training examples
        probe = np.random.default_rng(0).normal(size=(4, *known)).astype(np.float32)
    # Direct calls, not predict(): no tf.function is traced for a one-off batch.
    fed = for_keras(probe)
    expected = np.concatenate(
        [
            np.asarray(keras3.ops.convert_to_numpy(t), np.float64).ravel()
            for t in tf.nest.flatten(model(fed, training=False))
        ]
    )
    got = np.concatenate(
        [np.asarray(t, np.float64).ravel() for t in tf.nest.flatten(rebuilt(fed, training=False))]
    )
    # Both compute in float32, with kernels that may round differently (e.g. batch norm).
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf
        raise _RebuildError(
            f"the rebuild's outputs differ from the original's (by up to {diff:.3g} on "
            f"{len(probe)} example(s))"
        )


def keras3_loss(model: Any) -> Any | None:
    """The Keras 3 ``model``'s compiled loss for tf_keras, or None to derive one."""
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, str):  # loss names are the same in both flavours
        return loss
    try:
        cls = getattr(tf_keras.losses, type(loss).__name__)
        accepted = _init_parameters(cls)
        return cls(**{k: v for k, v in loss.get_config().items() if k in accepted})
    except Exception:  # noqa: BLE001 - no twin: derive the loss from the output layer instead
        logger.info("QAT derives a loss: %r has no tf_keras counterpart", loss)
        return None
