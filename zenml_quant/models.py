"""Loading, checking and saving the Keras models that enter the package.

Both flavours are accepted. ``.keras`` and ``.h5`` files record the Keras version that wrote
them, which picks the loader (Keras 3 or ``tf_keras``); a SavedModel directory is ``tf_keras``
(Keras 3 cannot load a SavedModel as a model, only as an inference-only ``TFSMLayer``).
Loading is safe by default: the config is read and checked before anything is deserialised,
because tf_keras's ``.h5`` and SavedModel loaders run ``Lambda`` bytecode without asking.
Permission to run a file's code is given per call (``allow_unsafe=True``) or per block
(:func:`allow_unsafe_loading`), never for the rest of the process: the Keras flavours' global
"safe mode" is set for the one load and restored after it, however the load ends.
Only Sequential and Functional models are accepted: conversion, per-layer profiling and the
architecture search need the static layer graph.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._compat import is_keras3_model, is_tf_keras_model, keras3, tf_keras
from .errors import InvalidModelError
from .inputs import model_input_names
from .model_file import (
    SUPPORTED_FORMATS,
    _Config,
    _one_line,
    _walk,
)
from .model_file import read_model_config as _inspect
from .outputs import output_names, scored_layer

__all__ = [
    "SUPPORTED_FORMATS",
    "allow_unsafe_loading",
    "check_model",
    "count_params",
    "final_activation",
    "input_shape",
    "input_shapes",
    "load_model",
    "model_flavour",
    "num_outputs",
    "output_shape",
    "refresh_adapted_layers",
    "save_model",
    "unsafe_loading_allowed",
]


_Objects = Mapping[str, Any] | None
_CONTAINERS = frozenset({"Sequential", "Functional", "Model"})
# tfmot's QAT layers; .h5 and SavedModel configs name them without a module.
_TFMOT_CLASSES = frozenset(
    {"QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeAnnotate"}
)
_SUBCLASSED = (
    "subclassed models are not supported: conversion, per-layer profiling and the architecture "
    "search need the static layer graph of a Sequential or Functional model; rebuild it with the "
    "Functional API (or wrap its call in a Functional model)"
)
# The loaders word "class not found" differently per flavour and format; all quote the name.
_UNKNOWN_CLASS = re.compile(
    r"(?:Unknown [a-z_]+(?: type)?|Could not locate (?:class|function)|"
    r"Cannot deserialize object of type)\s*:?\s*[`'\"]([^`'\"\s]+)[`'\"]"
)


# Set only inside allow_unsafe_loading(); a ContextVar, so other threads (the studio's server)
# and other asyncio tasks never see a block's permission.
_UNSAFE_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zenml_quant_unsafe_loading", default=False
)


@contextlib.contextmanager
def allow_unsafe_loading() -> Iterator[None]:
    """Let the :func:`load_model` calls made inside this block load ``Lambda`` layers.

    For loads that happen out of your reach, e.g. ZenML loading a model artifact through the
    Keras materializer (``artifact.load()``). The permission ends with the block (also on an
    exception) and holds only in the thread that entered it. Only for files you trust: a
    ``Lambda`` layer's Python code runs while the model loads.
    """
    token = _UNSAFE_ALLOWED.set(True)
    try:
        yield
    finally:
        _UNSAFE_ALLOWED.reset(token)


def unsafe_loading_allowed() -> bool:
    """Whether this code runs inside :func:`allow_unsafe_loading`."""
    return _UNSAFE_ALLOWED.get()


def load_model(
    path: str | os.PathLike[str],
    *,
    custom_objects: Mapping[str, Any] | None = None,
    allow_unsafe: bool = False,
    compile: bool = True,
) -> tf_keras.Model | keras3.Model:
    """Load a Sequential or Functional model from a ``.keras``/``.h5`` file or SavedModel dir.

    Args:
        path: the model file or SavedModel directory.
        custom_objects: custom classes (layers, activations, ...) by the name in the file.
        allow_unsafe: load ``Lambda`` layers, whose Python code runs while loading. Only for
            files you trust. It applies to this call only; inside
            :func:`allow_unsafe_loading` it is implied.
        compile: restore the optimizer, loss and metrics saved with the model.

    Raises:
        InvalidModelError: missing, unsupported or corrupt file; ``Lambda`` layers without
            ``allow_unsafe``; an unknown custom class; a subclassed model.
    """
    path = Path(path)
    allow_unsafe = bool(allow_unsafe) or unsafe_loading_allowed()
    flavour, config = _inspect(path)
    unsafe = _unsafe_layers(config)
    if unsafe and not allow_unsafe:
        raise InvalidModelError(
            f"{path} holds Lambda layer(s) {', '.join(unsafe)}: Lambda layers carry Python code "
            "that runs on load; rebuild them as registered custom layers, or, if you trust the "
            "file, pass allow_unsafe=True"
        )
    if _config_is_subclassed(config, flavour, custom_objects):
        raise InvalidModelError(f"{path}: {_SUBCLASSED}")
    if flavour == "keras3" and keras3 is None:
        raise InvalidModelError(f"{path} was written by Keras 3, which is not installed")
    # tf_keras honours safe_mode for .keras only; its .h5 and SavedModel loaders run Lambda code
    # unless a safe-mode scope is active, which is why the config was checked above and why
    # _safe_mode_for_this_load sets one for every format.
    loader = keras3.saving.load_model if flavour == "keras3" else tf_keras.saving.load_model
    try:
        objects = dict(custom_objects or {})
        with _safe_mode_for_this_load(safe=not allow_unsafe), _tfmot_scope(config, flavour):
            model = loader(
                str(path), custom_objects=objects, compile=compile, safe_mode=not allow_unsafe
            )
    except Exception as exc:  # noqa: BLE001 - loaders raise ValueError, TypeError, OSError...
        # One line names the file and the reason; the loader's exception stays on __context__.
        raise _explain_failure(path, flavour, config, custom_objects, exc) from None
    model_flavour(model)  # a SavedModel of plain tf.Modules comes back as a non-Keras object
    if not _is_graph_model(model):
        raise InvalidModelError(f"{path}: {_SUBCLASSED}")
    return model


@contextlib.contextmanager
def _safe_mode_for_this_load(*, safe: bool) -> Iterator[None]:
    """Both flavours' global safe mode set to ``safe`` for one load, then put back as it was.

    Keras keeps "safe mode" in a (thread-local) global that ``keras.config.
    enable_unsafe_deserialization()`` and the loaders' own scopes write to. Setting it here, for
    every format and both flavours, means no earlier ``allow_unsafe=True`` load, nor a library
    that flipped the global and never put it back, decides what this load may run; and
    whatever this load does to it is undone when it ends, even by an exception.
    """
    with contextlib.ExitStack() as stack:
        for module in (
            "tf_keras.src.saving.serialization_lib",
            "keras.src.saving.serialization_lib",
        ):
            try:
                scope = importlib.import_module(module).SafeModeScope
            except (ImportError, AttributeError):  # private module moved, or no Keras 3
                continue
            stack.enter_context(scope(safe))
        yield


def check_model(model: Any) -> None:
    """Refuse a model the package cannot work with, saying why and what to do.

    It must be a ``tf_keras`` or Keras 3 Sequential/Functional model, built with a known input
    shape. Several inputs are fine when each has its own name (the data's
    ``x_<split>_<input name>`` keys are matched to them); with several outputs the first is the
    one scored (see :mod:`zenml_quant.outputs`).
    """
    model_flavour(model)  # raises for anything but a Keras model
    if not _is_graph_model(model):
        raise InvalidModelError(f"model {model.name!r} ({type(model).__name__}): {_SUBCLASSED}")
    inputs, outputs = _symbolic(model, "inputs"), _symbolic(model, "outputs")
    if not inputs or not outputs:
        raise InvalidModelError(
            f"model {model.name!r} is not built, so its input shape is unknown: start it with an "
            "Input layer (keras.Input(shape=...)) or call model.build((None, ...)) first"
        )
    if len(outputs) > 1 and len(set(output_names(model))) != len(outputs):
        raise InvalidModelError(
            f"model {model.name!r} has outputs with the same name ({', '.join(output_names(model))}"
            "): give each output layer its own name"
        )
    if len(inputs) > 1:
        names = model_input_names(model)
        if len(set(names)) != len(names):
            raise InvalidModelError(
                f"model {model.name!r} has inputs with the same name ({', '.join(names)}): "
                "name each Input layer (keras.Input(shape, name=...)) so data can be matched"
            )


def refresh_adapted_layers(model: Any) -> None:
    """Make adapted preprocessing layers (``Normalization``...) compute with their weights again.

    Such a layer computes with tensors it derives from its weights when it is built or adapted.
    ``set_weights`` refreshes them, but tfmot's ``quantize_apply`` copies weights without it,
    so its copy normalises with mean 0 and variance 1.
    Checked on a Normalization CNN: its QAT copy trained on raw pixels while its BatchNorm
    learned their scale; early stopping's restore (``Model.set_weights``, which does refresh
    them) then switched normalisation back on under those statistics, and QAT scored chance.
    Call this after copying weights into a model by any other way than ``set_weights``.
    """
    stack = list(getattr(model, "layers", ()))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", ()))  # nested models
        inner = getattr(layer, "layer", None)  # tfmot's QuantizeWrapper
        if inner is not None:
            stack.append(inner)
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize) and getattr(layer, "built", False):
            finalize()


def model_flavour(model: Any) -> str:
    """``"tf_keras"`` for a Keras 2 model, ``"keras3"`` for a Keras 3 model."""
    if is_tf_keras_model(model):
        return "tf_keras"
    if is_keras3_model(model):
        return "keras3"
    got = f"{type(model).__module__}.{type(model).__qualname__}"
    hint = "; to read a file, call load_model(path)" if isinstance(model, (str, Path)) else ""
    raise InvalidModelError(
        f"expected a Keras model (tf_keras.Model or keras.Model), got {got}{hint}"
    )


def input_shape(model: Any) -> tuple[int | None, ...]:
    """The shape of one example (no batch axis), e.g. ``(28, 28, 1)``; of the first input for a
    model with several (see :func:`input_shapes`)."""
    check_model(model)
    return tuple(None if d is None else int(d) for d in model.inputs[0].shape[1:])


def input_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """Each input's per-example shape by input name, in the model's order."""
    check_model(model)
    return {
        name: tuple(None if d is None else int(d) for d in t.shape[1:])
        for name, t in zip(model_input_names(model), model.inputs)
    }


def num_outputs(model: Any) -> int:
    """The last dimension of the output: 10 for 10-class logits, 1 for a sigmoid."""
    check_model(model)
    shape = tuple(model.outputs[0].shape)
    if len(shape) < 2:  # one scalar per example
        return 1
    if shape[-1] is None:
        raise InvalidModelError(f"model {model.name!r} has an output of unknown width {shape}")
    return int(shape[-1])


def output_shape(model: Any) -> tuple[int | None, ...]:
    """The shape of one example's output (no batch axis), e.g. ``(10,)``."""
    check_model(model)
    return tuple(None if d is None else int(d) for d in model.outputs[0].shape[1:])


def final_activation(model: Any) -> str | None:
    """The activation the model's output goes through last (``"softmax"``, ``"sigmoid"``...),
    or None when it is linear or cannot be told."""
    check_model(model)
    layer = scored_layer(model)
    kind = type(layer).__name__
    if kind in ("Softmax", "ReLU"):
        return kind.lower()
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", activation)
    if not isinstance(name, str) or name == "linear":
        return None
    return name


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` in its flavour's native ``.keras`` format and return the path."""
    model_flavour(model)
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidModelError(f"save_model writes the native .keras format; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path), overwrite=True)
    return path


def count_params(model: Any) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts; non-trainable ones include BatchNorm statistics."""
    model_flavour(model)
    if not model.built:
        raise InvalidModelError(f"model {model.name!r} is not built: its weights do not exist yet")

    total, trainable = (
        sum(math.prod(int(d) for d in w.shape) for w in weights)
        for weights in (model.weights, model.trainable_weights)
    )
    return total, trainable


def _tfmot_scope(config: _Config, flavour: str) -> contextlib.AbstractContextManager[Any]:
    """tfmot's ``quantize_scope`` when the file holds a quantization-aware trained model.

    tfmot's layers (QuantizeWrapperV2, QuantizeLayer, ...) are not registered with tf_keras; the
    scope makes them known, so a QAT model saved with :func:`save_model` loads back. Two of them
    also need a fix to load from ``.keras`` (tfmot 0.8.1; model-optimization PR #1123, unmerged):
    see :func:`_loadable_tfmot_layers`.
    """
    if flavour != "tf_keras" or not any(
        str(node.get("module", "")).startswith("tensorflow_model_optimization")
        or node["class_name"] in _TFMOT_CLASSES
        for node in _walk(config)
    ):
        return contextlib.nullcontext()
    import tensorflow_model_optimization as tfmot  # after _compat: it picks tf_keras

    stack = contextlib.ExitStack()
    stack.enter_context(tfmot.quantization.keras.quantize_scope())
    # Entered last, so these win over quantize_scope's classes of the same name.
    stack.enter_context(tf_keras.utils.custom_object_scope(_loadable_tfmot_layers()))
    return stack


def _loadable_tfmot_layers() -> dict[str, type]:
    """tfmot's QuantizeLayer and QuantizeWrapper(V2), fixed to load from a ``.keras`` file.

    The ``.keras`` loader builds every layer from its saved input shape before wiring the
    model, then assigns each layer's own variables by position. QuantizeLayer.build never sets
    ``built``, so it is built twice (5 variables for 3 saved); a QuantizeWrapper lists its own
    variables in a different order when it builds the layer it wraps itself than when that
    layer was built first, which is how tfmot's quantize_apply makes it. The subclasses build
    once, and build the wrapped layer first, so the variables line up with the saved ones.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import (
        quantize_layer,
        quantize_wrapper,
    )

    class QuantizeLayer(quantize_layer.QuantizeLayer):  # type: ignore[misc]
        def build(self, input_shape: Any) -> None:
            super().build(input_shape)
            self.built = True

    def build_wrapped_first(base: type) -> type:
        class Fixed(base):  # type: ignore[misc,valid-type]
            def build(self, input_shape: Any) -> None:
                if not self.layer.built:
                    self.layer.build(input_shape)
                super().build(input_shape)

        Fixed.__name__ = Fixed.__qualname__ = base.__name__
        return Fixed

    return {
        "QuantizeLayer": QuantizeLayer,
        "QuantizeWrapper": build_wrapped_first(quantize_wrapper.QuantizeWrapper),
        "QuantizeWrapperV2": build_wrapped_first(quantize_wrapper.QuantizeWrapperV2),
    }


def _unsafe_layers(config: _Config) -> list[str]:
    # Other Python lambdas (e.g. an activation) are refused by the loaders' own safe_mode.
    names: dict[str, None] = {}
    for node in _walk(config):
        if node["class_name"] == "Lambda":
            inner = node.get("config")
            name = (inner.get("name") if isinstance(inner, dict) else None) or node.get("name")
            names[repr(name or "?")] = None  # a SavedModel lists each layer twice
    return list(names)


def _config_is_subclassed(config: _Config, flavour: str, custom_objects: _Objects) -> bool:
    if "is_graph_network" in config:  # SavedModel metadata states it outright
        return config.get("class_name") != "Sequential" and not config["is_graph_network"]
    cls = config.get("class_name")
    inner = config.get("config")
    if cls in _CONTAINERS or (isinstance(inner, dict) and "layers" in inner):
        return False
    # An unknown top-level class without a layer list is a subclassed model. If its class is
    # available, load it and decide on the object: a registered Functional subclass is fine.
    return not _resolvable(config, flavour, custom_objects)


def _explain_failure(
    path: Path, flavour: str, config: _Config, custom_objects: _Objects, exc: Exception
) -> InvalidModelError:
    text = str(exc)
    if "safe_mode" in text:  # unsafe code our walk did not recognise; the loader caught it
        return InvalidModelError(
            f"{path} holds Python code that runs on load ({_one_line(exc)}); rebuild it as "
            "registered custom layers, or, if you trust the file, pass allow_unsafe=True"
        )
    names = [n.split(">")[-1] for n in _UNKNOWN_CLASS.findall(text)]
    if not names:
        # tf_keras fails on an unregistered class from an importable module with a bare
        # "'str' object is not callable", so fall back on what the config says is unresolvable.
        names = [
            node["class_name"]
            for node in _walk(config)
            if isinstance(node.get("registered_name"), str)
            and node["class_name"] not in _CONTAINERS
            and not _resolvable(node, flavour, custom_objects)
        ]
    if names:
        names = list(dict.fromkeys(names))
        mapping = ", ".join(f'"{n}": {n}' for n in names)
        return InvalidModelError(
            f"{path} uses custom class(es) {', '.join(names)} that {flavour} does not know: pass "
            f"custom_objects={{{mapping}}} to load_model, or register the class(es) with "
            "@keras.saving.register_keras_serializable()"
        )
    return InvalidModelError(f"could not load {path} ({flavour}): {_one_line(exc)}")


def _resolvable(node: _Config, flavour: str, custom_objects: _Objects) -> bool:
    """Whether the loader can find the class of a config node besides the built-in ones."""
    keras_module = keras3 if flavour == "keras3" else tf_keras
    names = [n for n in (node.get("class_name"), node.get("registered_name")) if isinstance(n, str)]
    return keras_module is None or any(
        n in (custom_objects or {}) or keras_module.saving.get_registered_object(n) for n in names
    )


def _is_graph_model(model: Any) -> bool:
    if is_tf_keras_model(model):
        # An unbuilt Sequential is not a graph network yet, but becomes one when built.
        return isinstance(model, tf_keras.Sequential) or bool(model._is_graph_network)
    if isinstance(model, keras3.Sequential):
        return True
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # private path; fall back on the class name
        return type(model).__name__ in ("Functional", "Sequential")
    return isinstance(model, Functional)


def _symbolic(model: Any, attr: str) -> list[Any] | None:
    try:  # Keras 3 raises on an unbuilt Sequential; tf_keras returns None
        value = getattr(model, attr)
    except (AttributeError, ValueError):
        return None
    return list(value) if value is not None else None
