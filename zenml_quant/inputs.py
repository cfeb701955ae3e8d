"""Examples of a model with several inputs, kept as one numpy structured array.

A two-input model's examples (an image and a feature vector, say) are stored as one structured
array with a field per input, named after the model's ``Input`` layers and in the model's
order. Every row operation the package does on examples (splitting, shuffling, subsets,
padding, ``len``) then works unchanged; only the calls into Keras, the TFLite converter and the
interpreter take the fields apart, through this module. A one-input model's examples stay a
plain array, and every function here passes one through as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "all_finite",
    "describe_shape",
    "example_shape",
    "for_converter",
    "fits",
    "for_keras",
    "input_mismatch",
    "input_names",
    "is_multi",
    "map_parts",
    "model_input_names",
    "pack",
    "parts",
    "tflite_input_order",
]

#: The prefix the converter gives a Keras model's input tensors (``serving_default_image:0``).
_SIGNATURE_PREFIX = "serving_default_"


def is_multi(x: Any) -> bool:
    """True when ``x`` holds the examples of a model with several inputs (a structured array)."""
    return isinstance(x, np.ndarray) and x.dtype.names is not None


def input_names(x: np.ndarray) -> tuple[str, ...]:
    """The input names of structured examples, in the model's order (``()`` for one input)."""
    return tuple(x.dtype.names or ())


def parts(x: np.ndarray) -> dict[str, np.ndarray]:
    """Each input's examples as its own contiguous array, by input name, in order."""
    return {name: np.ascontiguousarray(x[name]) for name in input_names(x)}


def pack(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """One structured array with a field per entry of ``arrays`` (same length; order kept).

    Raises:
        ValueError: the arrays disagree in length, or there are none.
    """
    if not arrays:
        raise ValueError("no input arrays to pack")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {n:,}" for name, n in lengths.items())
        raise ValueError(f"the inputs hold different numbers of examples ({listed})")
    dtype = np.dtype([(name, a.dtype, a.shape[1:]) for name, a in arrays.items()])
    out = np.empty(next(iter(lengths.values())), dtype=dtype)
    for name, a in arrays.items():
        out[name] = a
    return out


def map_parts(x: np.ndarray, fn: Callable[[str, np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn(name, examples)`` applied to each input of structured ``x`` (or to plain ``x``,
    named ``""``), repacked in the same order."""
    if not is_multi(x):
        return fn("", x)
    return pack({name: fn(name, a) for name, a in parts(x).items()})


def all_finite(x: np.ndarray) -> bool:
    """True when every feature of every input is finite (no NaN or infinity)."""
    arrays = parts(x).values() if is_multi(x) else [x]
    return all(bool(np.isfinite(a).all()) for a in arrays)


def for_keras(x: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
    """What a Keras model's ``predict``/``fit``/``__call__`` takes: the array, or a dict by
    input name (Keras matches it to the ``Input`` layers' names)."""
    return parts(x) if is_multi(x) else x


def for_converter(x: np.ndarray) -> list[np.ndarray] | dict[str, np.ndarray]:
    """One calibration sample for the TFLite converter: ``[x]``, or a dict by input name (the
    converter matches it to the model's signature, whose order is not the Keras order)."""
    if is_multi(x):
        return {name: a.astype(np.float32, copy=False) for name, a in parts(x).items()}
    return [x]


def example_shape(x: np.ndarray) -> tuple[Any, ...]:
    """One example's shape, or ``((name, shape), ...)`` for structured examples: comparable
    across splits either way."""
    if not is_multi(x):
        return tuple(int(d) for d in x.shape[1:])
    return tuple((name, tuple(int(d) for d in x.dtype[name].shape)) for name in input_names(x))


def fits(x: np.ndarray, shapes: Mapping[str, Sequence[int | None]]) -> bool:
    """Whether the examples ``x`` fit a model whose inputs take ``shapes`` (by input name, in
    order; ``None`` is any size): one input and a plain array, or the same inputs by name."""
    if is_multi(x):
        if set(input_names(x)) != set(shapes):
            return False
        given = {name: x.dtype[name].shape for name in input_names(x)}
    elif len(shapes) == 1:
        given = {name: x.shape[1:] for name in shapes}
    else:
        return False
    return all(
        len(want) == len(given[name]) and all(w in (None, g) for w, g in zip(want, given[name]))
        for name, want in shapes.items()
    )


def input_mismatch(data_names: Sequence[str], model_names: Sequence[str]) -> str | None:
    """Why examples with inputs ``data_names`` (``()``: one plain array) cannot feed a model
    with inputs ``model_names``, naming the keys to store; None when they can."""
    keys = ", ".join(f"x_train_{n}" for n in model_names)
    if len(model_names) > 1 and not data_names:
        return (
            f"The model has {len(model_names)} inputs ({', '.join(model_names)}) but the data "
            f"holds one array per split: store one per input, keyed {keys} (and the same for "
            "x_test)."
        )
    if data_names and len(model_names) <= 1:
        return (
            f"The data holds {len(data_names)} inputs ({', '.join(data_names)}) but the model "
            "takes one: pass the matching model, or store a single x_train/x_test."
        )
    if data_names and set(data_names) != set(model_names):
        return (
            f"The data's inputs ({', '.join(data_names)}) are not the model's "
            f"({', '.join(model_names)}): key the arrays by the model's Input layer names "
            f"({keys})."
        )
    return None


def describe_shape(x: np.ndarray) -> str:
    """``(28, 28, 1)``, or ``image (16, 16, 1), meta (4,)`` for several inputs."""
    if not is_multi(x):
        return str(example_shape(x))
    return ", ".join(f"{name} {shape}" for name, shape in example_shape(x))


def model_input_names(model: Any) -> tuple[str, ...]:
    """The names of a Keras model's inputs, in order: the names its ``Input`` layers were
    given, which Keras matches a dict of inputs against."""
    names = getattr(model, "input_names", None)
    if names:
        return tuple(str(n) for n in names)
    return tuple(str(t.name).split(":")[0] for t in model.inputs)


def tflite_input_order(details: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """For each of a TFLite model's input ``details`` (in the interpreter's order), the input
    name it carries (the converter names them ``serving_default_<name>:0``).

    Raises:
        ValueError: some tensor cannot be matched to exactly one of ``names``.
    """
    order = []
    for detail in details:
        tensor = str(detail["name"]).split(":")[0]
        bare = tensor.removeprefix(_SIGNATURE_PREFIX)
        found = [n for n in names if n in (tensor, bare)]
        if len(found) != 1:
            raise ValueError(
                f"the TFLite input {detail['name']!r} matches none of the inputs "
                f"{', '.join(names)}: convert the model with zenml_quant.convert_model"
            )
        order.append(found[0])
    if sorted(order) != sorted(names):
        raise ValueError(f"the TFLite inputs {order} are not the inputs {list(names)}")
    return order
