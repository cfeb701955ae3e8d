"""Compile-and-fit for zoo models, and their natural quality metric, per task.

The zoo's classifiers end in softmax (the MLPerf references, MobileNetV2), in plain logits
(the small test nets) or in one sigmoid unit (binary detectors); the loss is chosen from the
output layer's activation so each trains without per-model settings. Works on ``tf_keras``
and Keras 3 models alike.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.metrics import roc_auc_score

from zenml_quant._compat import is_keras3_model, keras3, tf_keras

from .data import Arrays, one_hot

__all__ = [
    "METRICS",
    "TASKS",
    "Metric",
    "Task",
    "chance",
    "model_inputs",
    "output_activation",
    "predict",
    "score",
    "train",
]

Task = Literal["classification", "binary", "regression", "reconstruction"]
Metric = Literal["top1", "auc", "mae", "reconstruction_auc"]
TASKS: tuple[str, ...] = ("classification", "binary", "regression", "reconstruction")
METRICS: tuple[str, ...] = ("top1", "auc", "mae", "reconstruction_auc")


def _keras(model: Any) -> Any:
    """The Keras module (tf_keras or Keras 3) whose losses and optimizers fit ``model``."""
    return keras3 if is_keras3_model(model) else tf_keras


def output_activation(model: Any) -> str:
    """The name of the last layer's activation: ``softmax``, ``sigmoid``, ``linear``, ...

    A ``Softmax`` or ``Activation`` layer at the end counts as that activation.
    """
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "linear") if activation is not None else "linear"


def model_inputs(model: Any, arrays: Arrays, split: str) -> np.ndarray | dict[str, np.ndarray]:
    """The ``split``'s inputs for ``model``: ``x_<split>``, or a dict by input name.

    A multi-input model's arrays are keyed ``x_<split>_<input name>``; a single-input model
    falls back to that key when plain ``x_<split>`` is absent.
    """
    names = [t.name.split(":")[0] for t in model.inputs]
    if len(names) == 1 and f"x_{split}" in arrays:
        return arrays[f"x_{split}"]
    missing = [n for n in names if f"x_{split}_{n}" not in arrays]
    if missing:
        raise KeyError(f"no x_{split}_<input> arrays for inputs {missing} (keys: {sorted(arrays)})")
    if len(names) == 1:
        return arrays[f"x_{split}_{names[0]}"]
    return {n: arrays[f"x_{split}_{n}"] for n in names}


def _loss(model: Any, task: Task, loss: str | None) -> Any:
    losses = _keras(model).losses
    activation = output_activation(model)
    if task == "classification":
        from_logits = activation != "softmax"
        if loss == "categorical_crossentropy":
            return losses.CategoricalCrossentropy(from_logits=from_logits)
        return losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    if task == "binary":
        return losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
    if task in ("regression", "reconstruction"):
        return losses.MeanSquaredError()
    raise ValueError(f"task={task!r}: expected one of {TASKS}")


def _targets(model: Any, arrays: Arrays, split: str, task: Task, loss: str | None) -> Any:
    if task == "reconstruction":
        return model_inputs(model, arrays, split)  # an autoencoder's target is its input
    y = arrays[f"y_{split}"]
    if task == "classification" and loss == "categorical_crossentropy" and y.ndim == 1:
        return one_hot({f"y_{split}": y}, int(model.outputs[0].shape[-1]))[f"y_{split}"]
    if task == "binary":
        return y.reshape(-1, 1).astype(np.float32)
    return y


def train(
    model: Any,
    data: Arrays,
    epochs: int = 1,
    *,
    task: Task = "classification",
    loss: str | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Any:
    """Compile ``model`` with the loss ``task`` calls for and fit it on ``data``'s train split.

    Args:
        model: a tf_keras or Keras 3 model; it is (re)compiled with Adam.
        data: arrays in the zoo's ``.npz`` layout; ``x_val``/``y_val``, when present, are
            passed as validation data.
        epochs: passes over the training split.
        task: ``classification`` (sparse categorical cross-entropy, from logits unless the
            output is softmax), ``binary`` (binary cross-entropy), ``regression`` (MSE against
            ``y``) or ``reconstruction`` (MSE against the input itself).
        loss: ``"categorical_crossentropy"`` trains a classifier on one-hot labels (integer
            labels are one-hot encoded), as MLPerf Tiny's ResNet-8 reference does.
        seed: seeds weight updates' randomness (shuffling, dropout).

    Returns:
        The Keras ``History`` of the fit.
    """
    keras = _keras(model)
    keras.utils.set_random_seed(seed)
    metrics = ["accuracy"] if task in ("classification", "binary") else []
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=_loss(model, task, loss),
        metrics=metrics,
    )
    validation = None
    if any(k.startswith("y_val") for k in data):
        validation = (
            model_inputs(model, data, "val"),
            _targets(model, data, "val", task, loss),
        )
    history = model.fit(
        model_inputs(model, data, "train"),
        _targets(model, data, "train", task, loss),
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        verbose=0,
    )
    reestimate_batchnorm(model, model_inputs(model, data, "train"), batch_size=batch_size)
    return history


def reestimate_batchnorm(
    model: Any, inputs: Any, *, batch_size: int = 32, max_examples: int = 4096
) -> None:
    """Set every BatchNormalization layer's moving statistics to their mean over the train
    batches (weights untouched).

    A net with the published BatchNorm momentum of 0.999 (MobileNetV2) trained for a few
    hundred steps keeps moving statistics that are still mostly their initial values: it
    scored 99 % on its training batches and chance (10 %) in inference after 20 epochs here.
    Passes in training mode with momentum ``i / (i + 1)`` at batch ``i`` make the moving
    statistics the running mean of the batches' own.
    """
    layers = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    count = min(len(first), max_examples)
    try:
        for i, start in enumerate(range(0, count, batch_size)):
            for layer in layers:
                layer.momentum = i / (i + 1)  # new = m * old + (1 - m) * batch: a running mean
            window = slice(start, min(start + batch_size, count))
            batch = (
                {k: v[window] for k, v in inputs.items()}
                if isinstance(inputs, dict)
                else (inputs[window])
            )
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _all_layers(model: Any) -> list[Any]:
    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", ()))
    return found


def predict(model: Any, inputs: Any, *, batch_size: int = 256) -> np.ndarray:
    """``model``'s outputs on ``inputs`` (an array or a dict by input name), in inference mode.

    Calls the model batch by batch instead of ``model.predict``: ``predict`` traces a graph
    first, which costs seconds on a deep net, more than scoring a few hundred examples.
    """
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    outputs = []
    for start in range(0, len(first), batch_size):
        window = slice(start, start + batch_size)
        batch = (
            {k: v[window] for k, v in inputs.items()}
            if isinstance(inputs, dict)
            else inputs[window]
        )
        outputs.append(np.asarray(model(batch, training=False)))
    return np.concatenate(outputs)


def score(model: Any, data: Arrays, metric: Metric, *, split: str = "test") -> float:
    """``model``'s ``metric`` on ``data``'s ``split``.

    ``top1``: accuracy of the arg-max (labels integer or one-hot). ``auc``: ROC AUC of the
    single output against 0/1 labels. ``mae``: mean absolute error. ``reconstruction_auc``:
    ROC AUC of the per-example mean squared reconstruction error against 0/1 anomaly labels.
    """
    inputs = model_inputs(model, data, split)
    predictions = predict(model, inputs)
    y = np.asarray(data[f"y_{split}"])
    if metric == "top1":
        labels = y.argmax(axis=-1) if y.ndim > 1 else y
        return float(np.mean(predictions.argmax(axis=-1) == labels))
    if metric == "auc":
        return float(roc_auc_score(y.reshape(-1), predictions.reshape(-1)))
    if metric == "mae":
        return float(np.mean(np.abs(predictions.reshape(y.shape) - y)))
    if metric == "reconstruction_auc":
        flat = np.asarray(inputs).reshape(len(y), -1)
        errors = np.mean((predictions.reshape(len(y), -1) - flat) ** 2, axis=1)
        return float(roc_auc_score(y, errors))
    raise ValueError(f"metric={metric!r}: expected one of {METRICS}")


def chance(metric: Metric, data: Arrays, *, split: str = "test") -> float:
    """What a model that ignores its input scores on ``metric`` (``mae``: predicting the mean)."""
    y = np.asarray(data[f"y_{split}"])
    if metric == "top1":
        labels = y.argmax(axis=-1) if y.ndim > 1 else y
        return float(np.bincount(labels).max() / len(labels))
    if metric in ("auc", "reconstruction_auc"):
        return 0.5
    if metric == "mae":
        return float(np.mean(np.abs(y - data["y_train"].mean(axis=0))))
    raise ValueError(f"metric={metric!r}: expected one of {METRICS}")
