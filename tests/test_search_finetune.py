"""Brief fine-tuning of candidates: seeds, step sampling, distillation, bad options."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.errors import InvalidOptionError
from zenml_quant.search.finetune import FineTuneOptions, fine_tune


def _clone(model):
    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


def test_same_seed_same_weights_other_seed_other_weights(digits, digits_model):
    options = FineTuneOptions(epochs=2, steps_per_epoch=5, batch_size=16)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        model = _clone(digits_model)
        losses = fine_tune(model, digits.x_train, digits.y_train, options, seed=seed)
        assert len(losses) == 2 and all(np.isfinite(losses))
        runs[name] = model
    assert _same_weights(runs["a"], runs["b"])
    assert not _same_weights(runs["a"], runs["c"])
    assert not _same_weights(runs["a"], digits_model)


def _spy_on_fit(model, monkeypatch):
    """Record the (x, y) batches each fit() call trains on."""
    calls = []
    real_fit = model.fit

    def spy(data, **kw):
        calls.append([(np.asarray(bx), np.asarray(by)) for bx, by in data])
        return real_fit(data, **kw)

    monkeypatch.setattr(model, "fit", spy)
    return calls


def test_steps_per_epoch_trains_on_a_fresh_draw_of_steps_x_batch_each_epoch(
    digits, digits_model, monkeypatch
):
    model = _clone(digits_model)
    calls = _spy_on_fit(model, monkeypatch)
    options = FineTuneOptions(epochs=3, steps_per_epoch=4, batch_size=8)
    losses = fine_tune(model, digits.x_train, digits.y_train, options, seed=0)
    assert len(losses) == 3 and len(calls) == 3
    labels = {row.tobytes(): label for row, label in zip(digits.x_train, digits.y_train)}
    for batches in calls:
        assert [len(bx) for bx, _ in batches] == [8] * 4
        xs = np.concatenate([bx for bx, _ in batches])
        ys = np.concatenate([by for _, by in batches])
        assert len({row.tobytes() for row in xs}) == 32  # drawn without replacement
        assert [labels[row.tobytes()] for row in xs] == list(ys)  # examples keep their labels
    first, second = (np.concatenate([bx for bx, _ in c]) for c in calls[:2])
    assert not np.array_equal(first, second)  # drawn afresh each epoch


def test_epochs_cover_the_split_and_steps_beyond_it_reshuffle_to_fill(
    digits, digits_model, monkeypatch
):
    model = _clone(digits_model)
    calls = _spy_on_fit(model, monkeypatch)
    x, y = digits.x_train[:100], digits.y_train[:100]
    fine_tune(model, x, y, FineTuneOptions(epochs=1, batch_size=32), seed=0)
    seen = np.concatenate([bx for bx, _ in calls[0]])
    assert [len(bx) for bx, _ in calls[0]] == [32, 32, 32, 4]
    assert {r.tobytes() for r in seen} == {r.tobytes() for r in x}
    fine_tune(model, x, y, FineTuneOptions(epochs=1, steps_per_epoch=5, batch_size=32), seed=0)
    assert [len(bx) for bx, _ in calls[1]] == [32] * 5  # 160 examples out of 100


def _tiny_classifier(seed: int, softmax: bool):
    # No dropout or BatchNorm: in training mode they would make a model differ from itself.
    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential(
        [
            tf_keras.layers.Input((8, 8, 1)),
            tf_keras.layers.Conv2D(4, 3, activation="relu"),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(10, activation="softmax" if softmax else None),
        ]
    )


@pytest.mark.parametrize("softmax", [False, True])
def test_distillation_loss_is_zero_on_its_own_outputs_and_pulls_towards_the_teacher(
    digits, softmax
):
    x, y = digits.x_train[:512], digits.y_train[:512]

    def logits(model):
        out = model.predict(x, verbose=0)
        return np.log(out + 1e-7) if softmax else out

    def kl(teacher, student, t=4.0):
        p, q = (np.exp(a / t) / np.exp(a / t).sum(1, keepdims=True) for a in (teacher, student))
        return float(np.mean(np.sum(p * np.log(p / q), axis=1)))

    student = _tiny_classifier(0, softmax)
    options = FineTuneOptions(epochs=1, batch_size=64, distill=True, alpha=0.0)
    own = logits(student)
    assert fine_tune(student, x, y, options, teacher_logits=own, seed=0)[0] < 1e-4

    teacher = logits(_tiny_classifier(1, softmax))
    before = kl(teacher, logits(student))
    options = FineTuneOptions(epochs=5, batch_size=64, distill=True, alpha=0.0, learning_rate=1e-2)
    losses = fine_tune(student, x, y, options, teacher_logits=teacher, seed=0)
    assert losses[0] > 10 * 1e-4  # a teacher that is not the student costs something...
    assert kl(teacher, logits(student)) < 0.5 * before  # ...and training reduces it


def test_zero_epochs_is_a_no_op_and_distillation_needs_the_teacher(digits, digits_model):
    model = _clone(digits_model)
    assert fine_tune(model, digits.x_train, digits.y_train, FineTuneOptions(epochs=0)) == []
    assert _same_weights(model, digits_model)
    with pytest.raises(InvalidOptionError, match="teacher's logits"):
        fine_tune(model, digits.x_train, digits.y_train, FineTuneOptions(distill=True), seed=0)
    with pytest.raises(InvalidOptionError, match="steps_per_epoch"):
        FineTuneOptions(steps_per_epoch=0)


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_a_distill_setting_other_than_true_false_or_none_is_refused(bad):
    from zenml_quant.errors import InvalidOptionError
    from zenml_quant.search.finetune import FineTuneOptions

    with pytest.raises(InvalidOptionError, match="distill is True, False or None"):
        FineTuneOptions(distill=bad)


def _rates_seen(model, options, digits):
    """The learning rate each batch of a (non-distilled) fine-tune was taken with."""
    rates = []

    def record(done, total):
        rate = model.optimizer.learning_rate
        step = model.optimizer.iterations
        rates.append(float(rate(step) if callable(rate) else rate))

    fine_tune(model, digits.x_train, digits.y_train, options, seed=0, on_batch=record)
    return rates


def test_cosine_schedule_decays_the_rate_to_zero_over_the_whole_fine_tune(digits, digits_model):
    options = FineTuneOptions(epochs=2, steps_per_epoch=5, batch_size=8, learning_rate=0.01)
    assert options.schedule == "cosine"
    rates = _rates_seen(_clone(digits_model), options, digits)
    assert len(rates) == 10
    assert all(a > b for a, b in zip(rates, rates[1:]))  # decays across the epoch boundary too
    # the rate batch k is taken with: 0.01 at the first, falling towards 0 after the last
    expected = [0.01 * (1 + np.cos(np.pi * k / 10)) / 2 for k in range(10)]
    assert rates == pytest.approx(expected, rel=1e-4)
    constant = _rates_seen(_clone(digits_model), replace(options, schedule="constant"), digits)
    assert constant == pytest.approx([0.01] * 10)
    with pytest.raises(InvalidOptionError, match="schedule is one of cosine, constant"):
        FineTuneOptions(schedule="linear")


def test_a_plan_recorded_before_schedules_is_rebuilt_with_the_constant_rate_it_had(
    digits, digits_model
):
    from zenml_quant.search.apply import apply_plan, plan_meta
    from zenml_quant.search.edits import EditPlan

    options = FineTuneOptions(epochs=1, steps_per_epoch=4, batch_size=8, distill=False)
    meta = plan_meta(1, 5, options)
    assert meta["fine_tune"]["schedule"] == "cosine"
    del meta["fine_tune"]["schedule"]  # as a plan written before the schedule was recorded
    old = apply_plan(digits_model, EditPlan((), model=digits_model.name, meta=meta), digits)
    by_hand = {}
    for schedule in ("constant", "cosine"):
        by_hand[schedule] = _clone(digits_model)
        fine_tune(
            by_hand[schedule],
            digits.x_train,
            digits.y_train,
            replace(options, schedule=schedule),
            seed=5,
        )
    assert _same_weights(old.model, by_hand["constant"])
    assert not _same_weights(old.model, by_hand["cosine"])
