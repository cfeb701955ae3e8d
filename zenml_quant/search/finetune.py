"""Brief fine-tuning of an edited model, optionally distilled from the original as teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import tf, tf_keras
from ..errors import InvalidOptionError
from ..qat import loss_for

__all__ = ["FineTuneOptions", "fine_tune", "outputs_are_logits"]


@dataclass(frozen=True)
class FineTuneOptions:
    """How each candidate is fine-tuned before it is measured.

    ``epochs`` over the train split (at most ``steps_per_epoch`` batches each when set; 0 epochs
    skips fine-tuning). With ``distill`` the loss is ``alpha`` x cross-entropy on the labels plus
    ``(1 - alpha)`` x temperature² x KL(teacher || student) at ``temperature`` (Hinton et al.),
    the teacher being the original model.
    """

    epochs: int = 1
    steps_per_epoch: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs, isinstance(self.epochs, int) and self.epochs >= 0),
            (
                "steps_per_epoch",
                self.steps_per_epoch,
                self.steps_per_epoch is None
                or (isinstance(self.steps_per_epoch, int) and self.steps_per_epoch >= 1),
            ),
            (
                "batch_size",
                self.batch_size,
                isinstance(self.batch_size, int) and self.batch_size >= 1,
            ),
            ("learning_rate", self.learning_rate, 0 < self.learning_rate < 1),
            ("temperature", self.temperature, self.temperature > 0),
            ("alpha", self.alpha, 0 <= self.alpha <= 1),
        ]
        for name, value, good in checks:
            if isinstance(value, bool) or not good:
                raise InvalidOptionError(f"FineTuneOptions.{name} is out of range: {value!r}.")


def outputs_are_logits(model: Any) -> bool:
    """False when the model ends in a softmax (its outputs are probabilities)."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return not (type(last).__name__ == "Softmax" or name == "softmax")


def _distill_loss(temperature: float, alpha: float, from_logits: bool) -> Any:
    def loss(y_true: Any, y_pred: Any) -> Any:
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher = y_true[:, 1:]
        student = y_pred if from_logits else tf.math.log(y_pred + 1e-7)
        hard = tf_keras.losses.sparse_categorical_crossentropy(labels, student, from_logits=True)
        p_teacher = tf.nn.softmax(teacher / temperature)
        log_p_student = tf.nn.log_softmax(student / temperature)
        soft = tf.reduce_sum(
            p_teacher * (tf.math.log(p_teacher + 1e-7) - log_p_student), axis=-1
        ) * (temperature**2)
        return alpha * hard + (1.0 - alpha) * soft

    return loss


def fine_tune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    options: FineTuneOptions,
    *,
    teacher_logits: np.ndarray | None = None,
    seed: int = 0,
) -> list[float]:
    """Fine-tune ``model`` in place; returns the loss per epoch (empty when ``epochs`` is 0).

    ``teacher_logits`` (the original model's logits, or log-probabilities, on ``x``) is needed
    when ``options.distill`` is set.
    """
    if options.epochs == 0:
        return []
    tf_keras.utils.set_random_seed(seed)
    optimizer = tf_keras.optimizers.Adam(options.learning_rate)
    if options.distill:
        if teacher_logits is None or teacher_logits.ndim != 2 or teacher_logits.shape[1] < 2:
            raise InvalidOptionError(
                "Distillation needs a classifier with one output per class and the teacher's "
                "logits on the train split; turn FineTuneOptions.distill off for this model."
            )
        targets = np.concatenate([y.reshape(-1, 1).astype(np.float32), teacher_logits], axis=1)
        loss = _distill_loss(options.temperature, options.alpha, outputs_are_logits(model))
    else:
        targets, loss = y, loss_for(model)
    model.compile(optimizer=optimizer, loss=loss)
    history = model.fit(
        x,
        targets,
        epochs=options.epochs,
        steps_per_epoch=options.steps_per_epoch,
        batch_size=options.batch_size,
        shuffle=True,
        verbose=0,
    )
    return [float(v) for v in history.history.get("loss", [])]
