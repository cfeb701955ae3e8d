"""Which task a model solves, from its output and the labels, and the metric that judges it.

The rules (each can be overridden with ``task=``; ambiguity is refused, naming the flag):

- per-class outputs (2 or more) and class-index labels: ``classification`` (top-1);
- one sigmoid unit and labels 0/1: ``binary`` (accuracy at p > 0.5);
- an output with the input's shape: ``reconstruction`` (reconstruction AUC against the
  normal/anomaly labels when both occur, else the reconstruction error);
- float targets: ``regression`` (mean absolute error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidOptionError
from .metrics import TASK_METRICS, TASKS, Metric, get_metric
from .types import LabeledDataset

__all__ = ["ModelSignature", "infer_task", "resolve_metric"]


@dataclass(frozen=True)
class ModelSignature:
    """What task inference needs to know of a model: one example's input and output shapes
    (no batch axis) and the activation of its last layer (``None`` when linear or unknown)."""

    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    final_activation: str | None = None
    #: How many inputs the model takes; one with several cannot reconstruct "its input".
    inputs: int = 1

    @property
    def output_units(self) -> int:
        """The last output dimension (1 for a scalar output)."""
        if not self.output_shape:
            return 1
        last = self.output_shape[-1]
        return 1 if last is None else int(last)


_FLAG = "pass --task {classification, binary, regression, reconstruction} (task= in Python)"


def _label_values(dataset: LabeledDataset) -> np.ndarray:
    return np.concatenate([np.asarray(y).reshape(len(y), -1) for _, y in _splits(dataset)])


def _splits(dataset: LabeledDataset) -> Sequence[tuple[np.ndarray, np.ndarray]]:
    return [dataset.split(name) for name in ("train", "validation", "test")]


def _is_binary(dataset: LabeledDataset) -> bool:
    return dataset.has_classes and set(np.unique(_label_values(dataset)).tolist()) <= {0, 1}


def infer_task(signature: ModelSignature, dataset: LabeledDataset, task: str | None = None) -> str:
    """The task of ``signature``'s model on ``dataset``: ``task`` when given (checked against
    the model and labels), else inferred by the module's rules; raises
    :class:`InvalidOptionError` naming the flag to pass when the rules do not decide."""
    if task is not None:
        if task not in TASKS:
            raise InvalidOptionError(f"Unknown task {task!r}: {_FLAG}.")
        _check_task(task, signature, dataset)
        return task
    same_shape = signature.inputs == 1 and tuple(signature.output_shape) == tuple(
        signature.input_shape
    )
    units = signature.output_units
    if not dataset.has_classes:
        if same_shape:
            raise InvalidOptionError(
                "The model's output has its input's shape (an autoencoder?) but the labels are "
                f"float values, which could be regression targets: {_FLAG}."
            )
        return "regression"
    if same_shape:
        if _is_binary(dataset) or units != dataset.num_classes:
            return "reconstruction"
        raise InvalidOptionError(
            f"The model's output has its input's shape {signature.input_shape} and the labels "
            f"are {dataset.num_classes} classes, so it could be a classifier or an "
            f"autoencoder: {_FLAG}."
        )
    if units == 1:
        if signature.final_activation == "sigmoid" and _is_binary(dataset):
            return "binary"
        raise InvalidOptionError(
            "The model has one output unit "
            + (
                f"with activation {signature.final_activation!r}"
                if signature.final_activation
                else "without a sigmoid"
            )
            + " and the labels are whole numbers, so it could be a binary classifier or a "
            f"regression: {_FLAG}."
        )
    if len(signature.output_shape) == 1 and units >= dataset.num_classes:
        return "classification"
    raise InvalidOptionError(
        f"The model outputs shape {signature.output_shape} for labels of "
        f"{dataset.num_classes} classes, which no rule matches: {_FLAG}."
    )


def _check_task(task: str, signature: ModelSignature, dataset: LabeledDataset) -> None:
    units = signature.output_units
    if task in ("classification", "binary") and not dataset.has_classes:
        raise InvalidOptionError(
            f"--task {task} needs class labels, but the labels are float values: pass --task "
            "regression, or store whole class indices."
        )
    if task == "binary":
        if units != 1 and units != 2:
            raise InvalidOptionError(
                f"--task binary needs one sigmoid output (or two classes); the model has "
                f"{units} outputs: pass --task classification."
            )
        if not _is_binary(dataset):
            raise InvalidOptionError(
                "--task binary needs labels 0 and 1; relabel the data or pass --task "
                "classification."
            )
    if task == "classification" and units < max(dataset.num_classes, 2):
        raise InvalidOptionError(
            f"--task classification needs one output per class; the model has {units} for "
            f"{dataset.num_classes} classes: pass --task binary for one sigmoid unit."
        )
    if task == "reconstruction":
        if signature.inputs > 1:
            raise InvalidOptionError(
                f"--task reconstruction compares an output with the model's input, but this "
                f"model has {signature.inputs} inputs: pass a model with one input, or another "
                "--task."
            )
        if tuple(signature.output_shape) != tuple(signature.input_shape):
            raise InvalidOptionError(
                f"--task reconstruction needs an output of the input's shape "
                f"{signature.input_shape}; the model outputs {signature.output_shape}."
            )
        if dataset.has_classes and not _is_binary(dataset):
            raise InvalidOptionError(
                "--task reconstruction reads the labels as normal (0) / anomaly (1), but they "
                "hold other values: relabel them 0/1."
            )


def resolve_metric(
    task: str,
    dataset: LabeledDataset,
    metric: str | None = None,
    *,
    higher_is_better: bool | None = None,
) -> Metric:
    """The metric for ``task``: ``metric`` when given (checked to fit the task), else the
    task's default; for reconstruction, the AUC when validation and test both hold normal and
    anomaly examples, else the reconstruction error."""
    if metric is None:
        if higher_is_better is not None:
            raise InvalidOptionError(
                "--higher-is-better/--lower-is-better only go with --metric "
                "package.module:function."
            )
        name = TASK_METRICS[task][0]
        if task == "reconstruction" and not _both_labels_scored(dataset):
            name = "reconstruction_error"
        return get_metric(name)
    chosen = get_metric(metric, higher_is_better=higher_is_better)
    if chosen.spec is None and chosen.name not in TASK_METRICS[task]:
        raise InvalidOptionError(
            f"--metric {metric} does not score a {task} model: use one of "
            f"{', '.join(TASK_METRICS[task])}, or your own 'package.module:function'."
        )
    if chosen.name == "reconstruction_auc" and not _both_labels_scored(dataset):
        raise InvalidOptionError(
            "--metric reconstruction_auc needs normal (0) and anomaly (1) examples in both the "
            "validation and the test split: add anomalies there, or use --metric "
            "reconstruction_error."
        )
    return chosen


def _both_labels_scored(dataset: LabeledDataset) -> bool:
    if not dataset.has_classes:
        return False
    return all(
        set(np.unique(np.asarray(dataset.split(s)[1])).tolist()) == {0, 1}
        for s in ("validation", "test")
    )


def dataset_task(dataset: LabeledDataset) -> str:
    """The task the dataset was fitted to a model for (classification when not fitted)."""
    return getattr(dataset, "task", "") or "classification"


def dataset_metric(dataset: LabeledDataset) -> Metric:
    """The metric the dataset's model is judged by (top-1 accuracy when not fitted)."""
    from .metrics import metric_from_dict

    return metric_from_dict(getattr(dataset, "metric", None))
