"""What a model is fine-tuned against: the loss and the targets shaped for it, per task.

QAT and the search's fine-tuning train a copy of the user's model. They use the model's own
compiled loss when it has one, with the labels shaped the way that loss expects (one-hot rows
for ``categorical_crossentropy``, class indices for the sparse form); otherwise the task's
natural loss. An autoencoder trains to reconstruct its input, never against its anomaly
labels, and only on the examples labeled normal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compat import tf_keras
from .convert import remapper_disabled
from .errors import InvalidOptionError
from .inputs import for_keras
from .outputs import output_names, scored_layer

__all__ = ["TrainingData", "keep_other_outputs", "loss_for", "one_hot_loss", "training_data"]

# Losses that compare a whole probability row with a target row: they need one-hot labels.
_ONE_HOT_LOSSES = {
    "categoricalcrossentropy",
    "categorical_crossentropy",
    "categoricalfocalcrossentropy",
    "categorical_focal_crossentropy",
    "kldivergence",
    "kl_divergence",
    "kld",
    "categoricalhinge",
    "categorical_hinge",
}


@dataclass(frozen=True)
class TrainingData:
    """The loss to compile with and the (inputs, targets) of the train and validation splits."""

    loss: Any
    x_train: np.ndarray
    #: The scored output's targets; a list with one entry per output for several outputs.
    y_train: Any
    x_val: np.ndarray
    y_val: Any
    #: What was done to the labels, for logs and notes (e.g. "one-hot labels for ...").
    note: str = ""


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss.lower()
    name = getattr(loss, "__name__", None) or type(loss).__name__
    return str(name).lower()


def one_hot_loss(loss: Any) -> bool:
    """Whether ``loss`` (a name, a function or a loss object) expects one-hot target rows."""
    return loss is not None and _loss_name(loss) in _ONE_HOT_LOSSES


def _compiled_loss(model: Any) -> Any:
    """The loss the model was compiled with for its scored (first) output, if any."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and loss:
        loss = loss[0]
    elif isinstance(loss, dict) and loss:
        loss = loss.get(output_names(model)[0])
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    return loss


def _activation_name(activation: Any) -> str:
    return str(getattr(activation, "__name__", activation) or "").lower()


def loss_for(model: Any, task: str = "classification") -> Any:
    """The model's compiled loss if it has one, else the task's natural loss: cross-entropy
    matching the output (logits or probabilities) for classifiers, mean squared error for
    regression and reconstruction."""
    loss = _compiled_loss(model)
    if loss is not None:
        return loss
    if task in ("regression", "reconstruction"):
        return tf_keras.losses.MeanSquaredError()
    last = scored_layer(model)
    activation = _activation_name(getattr(last, "activation", None))
    probabilities = isinstance(last, tf_keras.layers.Softmax) or activation == "softmax"
    if int(model.outputs[0].shape[-1] or 0) == 1:  # one sigmoid unit, labels 0/1
        return tf_keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
    return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def training_data(
    model: Any,
    task: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    loss: Any = None,
) -> TrainingData:
    """The loss (``loss``, else :func:`loss_for`) and the targets shaped for it.

    - classification / binary: class indices, or one-hot rows when the loss needs them;
    - regression: the float targets as they are;
    - reconstruction: the inputs themselves, train and validation restricted to the examples
      labeled normal (0) so the model never learns to reconstruct anomalies.
    """
    loss = loss if loss is not None else loss_for(model, task)
    if task == "reconstruction":
        normal_train, normal_val = np.asarray(y_train) == 0, np.asarray(y_val) == 0
        if not normal_train.any():
            raise InvalidOptionError(
                "An autoencoder fine-tunes on normal examples (label 0), and the train split "
                "has none: label the normal examples 0."
            )
        dropped = int((~normal_train).sum())
        x_t, x_v = x_train[normal_train], x_val[normal_val] if normal_val.any() else x_val
        note = "reconstruction targets are the inputs" + (
            f"; {dropped} train example(s) labeled anomaly left out" if dropped else ""
        )
        return TrainingData(loss, x_t, x_t, x_v, x_v, note)

    def shaped(target: Callable[[np.ndarray], np.ndarray], note: str) -> TrainingData:
        train, val = target(np.asarray(y_train)), target(np.asarray(y_val))
        return TrainingData(loss, x_train, train, x_val, val, note)

    if task == "regression":
        return shaped(lambda y: y.astype(np.float32), "regression targets")
    if one_hot_loss(loss):
        units = int(model.outputs[0].shape[-1] or 0)
        if units < 2:
            raise InvalidOptionError(
                f"The model is compiled with {_loss_name(loss)!r}, which needs one output per "
                f"class, but it has {units}: compile it with binary_crossentropy."
            )
        eye = np.eye(units, dtype=np.float32)
        return shaped(
            lambda y: eye[y.astype(np.int64)],
            f"one-hot labels for the model's {_loss_name(loss)} loss",
        )
    return shaped(lambda y: y.astype(np.int64), "class-index labels")


def keep_other_outputs(model: Any, reference: Any, data: TrainingData) -> TrainingData:
    """``data`` for a model with several outputs: the scored (first) output trains against
    ``data``'s targets, every other output against what ``reference`` (the original model)
    predicts for the same inputs, by mean squared error, so that heads no figure measures do
    not drift while the layers they share adapt. ``data`` itself for a model with one output.
    """
    names = output_names(model)
    if len(names) < 2:
        return data

    def targets(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        with remapper_disabled():
            predicted = reference.predict(for_keras(x), batch_size=256, verbose=0)
        return [y, *(np.asarray(p, np.float32) for p in predicted[1:])]

    return TrainingData(
        [data.loss, *(tf_keras.losses.MeanSquaredError() for _ in names[1:])],
        data.x_train,
        targets(data.x_train, data.y_train),
        data.x_val,
        targets(data.x_val, data.y_val),
        f"{data.note}; output(s) {', '.join(names[1:])} kept close to the original model's "
        "predictions (mean squared error)",
    )
