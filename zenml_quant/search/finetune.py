"""Brief fine-tuning of an edited model, optionally distilled from the original as teacher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._compat import tf, tf_keras
from ..errors import InvalidOptionError
from ..inputs import for_keras
from ..outputs import scored_layer
from ..training import keep_other_outputs, loss_for, training_data

__all__ = ["SCHEDULES", "FineTuneOptions", "fine_tune", "outputs_are_logits"]

SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class FineTuneOptions:
    """How each candidate is fine-tuned before it is measured.

    ``epochs`` over the train split, reshuffled (seeded) each epoch; with ``steps_per_epoch``
    set, each epoch is that many batches of a fresh shuffle (reshuffled again to fill, if the
    split is smaller). 0 epochs skips fine-tuning. With ``distill`` the loss is ``alpha`` x
    cross-entropy on the labels plus ``(1 - alpha)`` x temperature² x KL(teacher || student) at
    ``temperature`` (Hinton et al.), the teacher being the original model. ``distill=None`` (the
    default) distils wherever it applies: a classifier with one output (:meth:`resolved`).
    ``schedule="cosine"`` (the default) decays the learning rate from ``learning_rate`` to 0
    over the whole fine-tune (Loshchilov & Hutter's cosine, no restarts); ``"constant"`` keeps
    it. A pre-trained model ends a short constant-rate fine-tune wherever the last noisy steps
    left it; the decay lets it settle.
    """

    epochs: int = 1
    steps_per_epoch: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    distill: bool | None = None
    temperature: float = 4.0
    alpha: float = 0.5
    schedule: str = "cosine"

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
        if self.schedule not in SCHEDULES:
            raise InvalidOptionError(
                f"FineTuneOptions.schedule is one of {', '.join(SCHEDULES)}; got {self.schedule!r}."
            )
        if not (self.distill is None or isinstance(self.distill, bool)):
            raise InvalidOptionError(
                f"FineTuneOptions.distill is True, False or None (where it applies); got "
                f"{self.distill!r}."
            )

    def resolved(self, model: Any, task: str) -> FineTuneOptions:
        """These options with ``distill=None`` decided for ``model``: on for a classifier with
        one output of two or more classes (a student learns more from the teacher's soft
        labels than from the hard ones alone, Hinton et al. 2015), off otherwise."""
        if self.distill is not None:
            return self
        shape = model.outputs[0].shape if len(model.outputs) == 1 else None
        applies = task == "classification" and shape is not None and int(shape[-1] or 0) >= 2
        return replace(self, distill=applies)


def outputs_are_logits(model: Any) -> bool:
    """False when the model ends in a softmax (its outputs are probabilities)."""
    last = scored_layer(model)
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
    on_batch: Callable[[int, int], None] | None = None,
    task: str = "classification",
    reference: Any = None,
) -> list[float]:
    """Fine-tune ``model`` in place; returns the loss per epoch (empty when ``epochs`` is 0).

    ``teacher_logits`` (the original model's logits, or log-probabilities, on ``x``) is needed
    when ``options.distill`` is set. Without distillation the model trains on the targets its
    ``task`` needs (:func:`zenml_quant.training.training_data`: class indices, float targets,
    or, for an autoencoder, its normal inputs). A model with several outputs trains its first
    (scored) one so, and keeps the others close to what ``reference`` (the original model)
    predicts (:func:`zenml_quant.training.keep_other_outputs`). ``on_batch(done, total)`` is
    called after every batch (an exception it raises stops the fine-tuning and is passed on).
    """
    if options.epochs == 0:
        return []
    tf_keras.utils.set_random_seed(seed)
    batch, steps = options.batch_size, options.steps_per_epoch
    per_epoch = -(-len(x) // batch) if steps is None else steps
    optimizer = tf_keras.optimizers.Adam(_rate(options, options.epochs * per_epoch))
    several = len(model.outputs) > 1
    if options.distill:
        if several:
            raise InvalidOptionError(
                "Distillation trains a classifier with one output; this model has "
                f"{len(model.outputs)}: turn FineTuneOptions.distill off for it."
            )
        if teacher_logits is None or teacher_logits.ndim != 2 or teacher_logits.shape[1] < 2:
            raise InvalidOptionError(
                "Distillation needs a classifier with one output per class and the teacher's "
                "logits on the train split; turn FineTuneOptions.distill off for this model."
            )
        plain_loss = loss_for(model, task)  # before the distillation loss is compiled in
        targets = np.concatenate([y.reshape(-1, 1).astype(np.float32), teacher_logits], axis=1)
        loss = _distill_loss(options.temperature, options.alpha, outputs_are_logits(model))
    else:
        shaped = training_data(model, task, x, y, x[:1], y[:1])
        if several:
            shaped = keep_other_outputs(model, reference or model, shaped)
        x, targets, loss = shaped.x_train, shaped.y_train, shaped.loss
    model.compile(optimizer=optimizer, loss=loss)
    rng = np.random.default_rng(seed)
    callbacks = [] if on_batch is None else [_BatchCallback(on_batch, options.epochs * per_epoch)]
    losses: list[float] = []
    for _epoch in range(options.epochs):
        order = _epoch_order(rng, len(x), None if steps is None else steps * batch)
        picked = [t[order] for t in targets] if several else targets[order]
        history = model.fit(
            _batches(x[order], picked, batch), epochs=1, verbose=0, callbacks=callbacks
        )
        losses.extend(float(v) for v in history.history.get("loss", []))
    if options.distill:
        # The distillation loss reads teacher outputs packed into the labels: a saved model
        # compiled with it could not be loaded or trained on plain labels, so it leaves
        # compiled with the task's own loss.
        model.compile(optimizer=tf_keras.optimizers.Adam(options.learning_rate), loss=plain_loss)
    return losses


def _rate(options: FineTuneOptions, total_steps: int) -> Any:
    if options.schedule == "constant":
        return options.learning_rate
    return tf_keras.optimizers.schedules.CosineDecay(options.learning_rate, max(total_steps, 1))


class _BatchCallback(tf_keras.callbacks.Callback):
    """Counts batches across the per-epoch fit() calls and reports them."""

    def __init__(self, on_batch: Callable[[int, int], None], total: int) -> None:
        super().__init__()
        self.on_batch, self.total, self.done = on_batch, total, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.done += 1
        self.on_batch(self.done, self.total)


def _epoch_order(rng: np.random.Generator, n: int, count: int | None) -> np.ndarray:
    """A seeded shuffle of the split, or its first ``count`` examples (reshuffled to fill)."""
    if count is None:
        return rng.permutation(n)
    rounds = -(-count // n)
    return np.concatenate([rng.permutation(n) for _ in range(rounds)])[:count]


def _batches(x: np.ndarray, y: np.ndarray | list[np.ndarray], batch_size: int) -> Any:
    """The epoch's examples, already in order, as a dataset run in the training thread.

    fit() on numpy arrays copies and shuffles the whole split for every candidate and feeds
    it through tf.data's own thread pool and autotuner. A process-pool worker held to one core
    then stalls at every hand-over between those threads and its training thread: pinned to one
    core, fine-tuning the MNIST candidates took 22 s of wall time for 15 s of CPU. With no
    private threads, no autotuning and only the steps' examples, it took 13 s for 13 s.
    """
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    targets = tuple(y) if isinstance(y, list) else y  # one entry per output
    dataset = tf.data.Dataset.from_tensor_slices((for_keras(x), targets)).batch(batch_size)
    return dataset.with_options(options)
