"""Fit a loaded dataset to the model it will be scored on: example shapes, labels, the task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from . import inputs as _inputs
from . import models as _models
from .datasets import check_classes, validate_dataset
from .errors import InvalidDatasetError
from .tasks import ModelSignature, infer_task, resolve_metric
from .types import LabeledDataset

__all__ = ["conform_to_model", "fit_to_model"]


def _fail(message: str) -> InvalidDatasetError:
    return InvalidDatasetError(message)


def conform_to_model(
    dataset: LabeledDataset, *, input_shape: Sequence[int | None], num_classes: int
) -> LabeledDataset:
    """Fit ``dataset`` to a classifier with per-example ``input_shape`` and ``num_classes``
    outputs.

    Flat rows (e.g. pixel columns of a CSV) are reshaped to a fully known ``input_shape`` of
    the same size; a trailing channel axis the model expects is added. Then checks shapes
    (``None`` matches any size) and labels, and pads ``class_names`` up to ``num_classes``.
    ``num_classes=1`` means a single sigmoid output: labels 0 and 1, two class names.
    :func:`fit_to_model` does this for any task.
    """
    return _fit_classes(_fit_inputs(dataset, input_shape), num_classes)


def fit_to_model(
    model: Any,
    dataset: LabeledDataset,
    *,
    task: str | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> LabeledDataset:
    """``dataset`` shaped for ``model``, with the task it solves and the metric that judges it.

    The task is ``task`` or inferred (:func:`zenml_quant.tasks.infer_task`); the metric is
    ``metric`` (a name, or ``package.module:function`` with ``higher_is_better``) or the task's
    default. Classifiers get the class checks of :func:`conform_to_model`; whole-number labels
    of a regression become float targets. Raises :class:`InvalidOptionError` when the task is
    ambiguous (naming the flag) and :class:`InvalidDatasetError` when the data does not fit.
    """
    shapes = _models.input_shapes(model)
    signature = ModelSignature(
        input_shape=_models.input_shape(model),
        output_shape=_models.output_shape(model),
        final_activation=_models.final_activation(model),
        inputs=len(shapes),
    )
    if len(shapes) > 1 or _inputs.is_multi(dataset.x_train):
        dataset = _fit_several_inputs(dataset, shapes)
    else:
        dataset = _fit_inputs(dataset, signature.input_shape)
    if task == "regression" and dataset.has_classes:
        dataset = _classes_as_values(dataset)
    task = infer_task(signature, dataset, task)
    if task in ("classification", "binary"):
        dataset = _fit_classes(dataset, _models.num_outputs(model))
        check_classes(dataset)
    elif task == "regression":
        want = tuple(signature.output_shape) or (1,)
        got = tuple(np.asarray(dataset.y_train).shape[1:]) or (1,)
        if math.prod(d or 1 for d in want) != math.prod(got):
            raise _fail(
                f"The regression targets have shape {got} per example but the model outputs "
                f"{want}: store one target per output."
            )
    chosen = resolve_metric(task, dataset, metric, higher_is_better=higher_is_better)
    fitted = replace(dataset, task=task, metric=chosen.to_dict())
    validate_dataset(fitted)
    return fitted


def _classes_as_values(dataset: LabeledDataset) -> LabeledDataset:
    """Whole-number labels read as classes (e.g. counts), turned back into float targets."""
    try:
        values = np.array([float(n) for n in dataset.class_names], dtype=np.float32)
    except ValueError:
        raise _fail(
            f"--task regression needs numeric targets, but the labels are names "
            f"({', '.join(dataset.class_names[:5])}): store numbers."
        ) from None
    ys = {k: values[np.asarray(getattr(dataset, k))] for k in ("y_train", "y_val", "y_test")}
    fitted = replace(dataset, **ys, class_names=())
    validate_dataset(fitted)
    return fitted


def _fit_inputs(dataset: LabeledDataset, input_shape: Sequence[int | None]) -> LabeledDataset:
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
    return replace(
        dataset,
        x_train=xs["x_train"],
        x_val=xs["x_val"],
        x_test=xs["x_test"],
        preprocessing=replace(dataset.preprocessing, channel_axis_added=added),
    )


def _fit_several_inputs(
    dataset: LabeledDataset, shapes: dict[str, tuple[int | None, ...]]
) -> LabeledDataset:
    """The data's inputs matched to the model's by name, put in the model's order."""
    problem = _inputs.input_mismatch(_inputs.input_names(dataset.x_train), tuple(shapes))
    if problem is not None:
        raise _fail(problem)
    for name, expected in shapes.items():
        got = dataset.x_train.dtype[name].shape
        if len(expected) != len(got) or any(e not in (None, d) for e, d in zip(expected, got)):
            raise _fail(
                f"The data's input {name!r} has examples of shape {got} but the model expects "
                f"{expected}: resize the data or pass the matching model."
            )

    def ordered(x: np.ndarray) -> np.ndarray:
        return _inputs.pack({name: x[name] for name in shapes})

    return replace(
        dataset,
        x_train=ordered(dataset.x_train),
        x_val=ordered(dataset.x_val),
        x_test=ordered(dataset.x_test),
    )


def _fit_classes(dataset: LabeledDataset, num_classes: int) -> LabeledDataset:
    if num_classes < 1:
        raise _fail(f"num_classes={num_classes}: a classifier needs at least one output.")
    if not dataset.has_classes:
        raise _fail(
            "The labels are float values, not class indices: a classifier needs whole class "
            "indices (or pass --task regression)."
        )
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
    conformed = replace(dataset, class_names=names)
    validate_dataset(conformed)
    return conformed
