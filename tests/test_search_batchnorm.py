"""Search trials recompute BatchNorm statistics after structural edits, kept when they score
better on validation."""

from __future__ import annotations

import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.demo import fit_classifier
from zenml_quant.search.edits import Edit, EditPlan
from zenml_quant.search.loop import SearchOptions, _context
from zenml_quant.search.trial import EvaluationOptions, evaluate_trial
from zenml_quant.search.types import TrialTask

layers = tf_keras.layers


@pytest.fixture(scope="module")
def stale_bn_model(digits):
    """BatchNorm with Keras' default momentum after a short training: its moving averages are
    still far from the statistics its layers see (about chance in inference)."""
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", name="conv1"),
            layers.BatchNormalization(name="bn1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(16, 3, padding="same", name="conv2"),
            layers.BatchNormalization(name="bn2"),
            layers.ReLU(name="relu2"),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(10, name="logits"),
        ],
        name="stale_bn",
    )
    return fit_classifier(model, digits, epochs=4, batch_size=32)


def _trial(model, digits, reestimate: bool):
    options = SearchOptions(
        evaluation=EvaluationOptions(
            measure_latency=False, estimate_energy=False, reestimate_batchnorm=reestimate
        )
    )
    context = _context(model, digits, options)
    plan = EditPlan((Edit("relu2", "activation", "relu6"),), model=model.name)
    return evaluate_trial(context, TrialTask(1, plan, seed=0, fine_tune=False)).record


def test_an_edited_candidate_gets_statistics_it_really_sees(stale_bn_model, digits):
    without = _trial(stale_bn_model, digits, reestimate=False)
    with_ = _trial(stale_bn_model, digits, reestimate=True)
    assert without.ok and with_.ok, (without.error, with_.error)
    assert without.keras_accuracy < 0.5  # stale moving averages
    assert with_.keras_accuracy > without.keras_accuracy + 0.3
    assert with_.accuracy > without.accuracy + 0.3  # the int8 file carries the new statistics
    (note,) = [n for n in with_.notes if "BatchNorm statistics re-estimated" in n]
    assert "(kept)" in note
    assert not any("BatchNorm" in n for n in without.notes)


def test_the_original_is_measured_as_it_is(stale_bn_model, digits):
    options = SearchOptions(evaluation=EvaluationOptions(measure_latency=False))
    context = _context(stale_bn_model, digits, options)
    original = evaluate_trial(
        context, TrialTask(0, EditPlan(model=stale_bn_model.name), seed=0, fine_tune=False)
    ).record
    assert original.ok and not any("BatchNorm" in n for n in original.notes)


def test_a_bad_example_count_is_refused_before_any_trial():
    from zenml_quant.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="batchnorm_examples must be >= 1"):
        EvaluationOptions(batchnorm_examples=0)


def test_apply_plan_rebuilds_the_candidate_with_its_new_statistics(stale_bn_model, digits):
    import numpy as np

    from zenml_quant.search.apply import apply_plan, plan_meta
    from zenml_quant.search.finetune import FineTuneOptions
    from zenml_quant.search.trial import load_keras_bytes

    fine = FineTuneOptions(epochs=1, steps_per_epoch=5, distill=False)
    options = SearchOptions(
        evaluation=EvaluationOptions(measure_latency=False, estimate_energy=False, fine_tune=fine)
    )
    context = _context(stale_bn_model, digits, options)
    plan = EditPlan(
        (Edit("relu2", "activation", "relu6"),),
        model=stale_bn_model.name,
        meta=plan_meta(1, 3, fine, options.evaluation.batchnorm_examples),
    )
    outcome = evaluate_trial(context, TrialTask(1, plan, seed=3, fine_tune=True))
    assert any("(kept)" in n for n in outcome.record.notes), outcome.record.notes
    measured = load_keras_bytes(outcome.keras)
    rebuilt = apply_plan(stale_bn_model, plan, digits).model
    for a, b in zip(rebuilt.get_weights(), measured.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_trial_says_where_its_time_went(stale_bn_model, digits):
    from zenml_quant.report.search import PHASE_COLUMNS, history_frame
    from zenml_quant.search.serialize import record_from_dict, record_to_dict

    record = _trial(stale_bn_model, digits, reestimate=True)
    phases = dict(record.phase_seconds)
    assert set(phases) == {"building", "evaluating", "converting"}  # no fine-tune, no timing
    assert all(s > 0 for s in phases.values()) and sum(phases.values()) <= record.seconds
    assert record_from_dict(record_to_dict(record)) == record
    frame = history_frame([record])
    assert frame.loc[0, "build_s"] == phases["building"]
    assert set(PHASE_COLUMNS.values()) <= set(frame.columns)


def test_candidates_distil_from_the_teacher_with_the_users_statistics(stale_bn_model, digits):
    import numpy as np

    from zenml_quant.search.apply import apply_plan, plan_meta
    from zenml_quant.search.finetune import FineTuneOptions
    from zenml_quant.search.recalibrate import distillation_teacher
    from zenml_quant.search.trial import load_keras_bytes

    teacher, note = distillation_teacher(stale_bn_model, digits, max_examples=2048)
    assert teacher is not stale_bn_model and "(kept)" in note and "teacher" in note
    fine = FineTuneOptions(epochs=1, steps_per_epoch=5, distill=True)
    options = SearchOptions(
        evaluation=EvaluationOptions(measure_latency=False, estimate_energy=False, fine_tune=fine)
    )
    context = _context(stale_bn_model, digits, options, teacher)
    plan = EditPlan(
        (Edit("relu2", "activation", "relu6"),),
        model=stale_bn_model.name,
        meta=plan_meta(1, 3, fine, options.evaluation.batchnorm_examples),
    )
    outcome = evaluate_trial(context, TrialTask(1, plan, seed=3, fine_tune=True))
    assert outcome.record.ok, outcome.record.error
    # Rebuilding the plan distils from the same re-estimated teacher: the very same weights.
    rebuilt = apply_plan(stale_bn_model, plan, digits).model
    for a, b in zip(rebuilt.get_weights(), load_keras_bytes(outcome.keras).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_distilling_search_says_which_teacher_it_used(stale_bn_model, digits):
    from zenml_quant.search.finetune import FineTuneOptions
    from zenml_quant.search.loop import search_architecture
    from zenml_quant.search.types import Targets

    fine = FineTuneOptions(epochs=1, steps_per_epoch=3, distill=True)
    options = SearchOptions(
        max_trials=1,
        batch_size=1,
        evaluation=EvaluationOptions(measure_latency=False, estimate_energy=False, fine_tune=fine),
    )
    result = search_architecture(
        stale_bn_model, digits, targets=Targets(max_size_bytes=10_000), options=options
    )
    assert any("for the distillation teacher (the original)" in n for n in result.notes)
