"""Fit a loaded dataset to the model it will be scored on: example shapes, labels, classes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .datasets import validate_dataset
from .errors import InvalidDatasetError
from .types import LabeledDataset

__all__ = ["conform_to_model"]


def _fail(message: str) -> InvalidDatasetError:
    return InvalidDatasetError(message)


def conform_to_model(
    dataset: LabeledDataset, *, input_shape: Sequence[int | None], num_classes: int
) -> LabeledDataset:
    """Fit ``dataset`` to a model with per-example ``input_shape`` and ``num_classes`` outputs.

    Flat rows (e.g. pixel columns of a CSV) are reshaped to a fully known ``input_shape`` of
    the same size; a trailing channel axis the model expects is added. Then checks shapes
    (``None`` matches any size) and labels, and pads ``class_names`` up to ``num_classes``. ``num_classes=1`` means a
    single sigmoid output: labels 0 and 1, two class names.
    """
    expected = tuple(None if d is None else int(d) for d in input_shape)
    shape = dataset.sample_shape
    xs = {"x_train": dataset.x_train, "x_val": dataset.x_val, "x_test": dataset.x_test}
    added = dataset.preprocessing.channel_axis_added
    known = tuple(d for d in expected if d is not None)
    if len(shape) == 1 and len(expected) > 1 and len(known) == len(expected):
        if math.prod(known) == shape[0]:  # row-major, as images are flattened into columns
            xs = {name: x.reshape(len(x), *known) for name, x in xs.items()}
    elif len(expected) == len(shape) + 1 and expected[-1] == 1:
        xs, added = {name: np.expand_dims(x, -1) for name, x in xs.items()}, True
    got = xs["x_train"].shape[1:]
    if len(expected) != len(got) or any(e not in (None, d) for e, d in zip(expected, got)):
        raise _fail(
            f"data examples have shape {shape} but the model expects {expected}: "
            "resize the data or pass the matching model."
        )
    if num_classes < 1:
        raise _fail(f"num_classes={num_classes}: a classifier needs at least one output.")
    outputs = 2 if num_classes == 1 else num_classes  # one sigmoid unit scores two classes
    labels = np.concatenate([dataset.y_train, dataset.y_val, dataset.y_test])
    if (bad := np.unique(labels[(labels < 0) | (labels >= outputs)])).size:
        allowed = "0 and 1 (single sigmoid output)" if num_classes == 1 else f"0..{outputs - 1}"
        raise _fail(
            f"Labels {bad[:10].tolist()} do not fit a model with num_classes="
            f"{num_classes}, which takes labels {allowed}: pass the matching model or "
            "relabel the data."
        )
    names = dataset.class_names
    if len(names) > outputs:
        raise _fail(
            f"The data has {len(names)} classes but the model has only {num_classes} "
            f"outputs: pass a model with {len(names)} outputs, or drop the extra classes."
        )
    names += tuple(str(i) for i in range(len(names), outputs))
    conformed = replace(
        dataset,
        **xs,
        class_names=names,
        preprocessing=replace(dataset.preprocessing, channel_axis_added=added),
    )
    validate_dataset(conformed)
    return conformed
