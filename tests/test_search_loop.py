"""The search loop end to end on the bundled digits: stops, failures, seeds, suggestions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zenml_quant.errors import ConversionError, InvalidOptionError
from zenml_quant.search import trial as trial_module
from zenml_quant.search.apply import apply_plan
from zenml_quant.search.finetune import FineTuneOptions
from zenml_quant.search.loop import (
    MAX_REPEATS_IN_A_ROW,
    SearchOptions,
    _compresses,
    search_architecture,
)
from zenml_quant.search.pareto import dominates, objectives
from zenml_quant.search.proposers import Proposal
from zenml_quant.search.space import SearchSpace, SpaceOptions
from zenml_quant.search.trial import EvaluationOptions
from zenml_quant.search.types import Targets

FAST = EvaluationOptions(
    fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=4, batch_size=32),
    calibration_samples=32,
    measure_latency=False,
)
#: Reachable on the digits demo CNN: the original is ~14 KB int8.
TARGETS = Targets(max_quality_drop=0.2, max_size_bytes=12_000)


def _options(**kw):
    base = {"max_trials": 4, "batch_size": 2, "seed": 1, "evaluation": FAST}
    base.update(kw)
    return SearchOptions(**base)


def test_search_records_every_trial_and_keeps_the_best_and_pareto_models(digits, digits_model):
    seen = []
    result = search_architecture(
        digits_model,
        digits,
        targets=TARGETS,
        options=_options(),
        progress=lambda record, state: seen.append((record.trial, state.done)),
    )
    assert [r.trial for r in result.records] == [0, 1, 2, 3, 4]
    assert result.original.plan.edits == () and result.original.ok
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert result.stop_reason == "trial budget of 4 used"
    figures = objectives(result.targets.metric)
    ok = [
        r
        for r in result.trials
        if r.ok and not dominates(result.original, r, figures) and _compresses(r, result.original)
    ]
    usable = [r for r in ok if result.targets.quality_met(result.original_accuracy, r.accuracy)]
    assert result.best is not None
    if result.best_trial == 0:  # the original dominates every usable candidate
        assert not usable and any("the original is the suggestion" in n for n in result.notes)
    else:
        assert result.best.reward == max(
            r.reward for r in usable if r.meets_targets == result.best.meets_targets
        )
    for trial in (result.best_trial, *result.pareto):
        assert trial in result.models
    frame = result.history()
    assert list(frame["trial"]) == [0, 1, 2, 3, 4]
    assert frame["pareto"].sum() == len(result.pareto)
    tflite = result.tflite()
    assert tflite.size_bytes == result.best.size_bytes
    assert "<svg" in result.pareto_svg() and "Pareto" in result.html()


def test_a_failing_trial_does_not_stop_the_search(digits, digits_model, monkeypatch):
    real = trial_module.convert_model
    calls = {"n": 0}

    def flaky(model, mode, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the first candidate's conversion (call 1 is the original)
            raise ConversionError("the converter refused this candidate (injected)")
        return real(model, mode, **kw)

    monkeypatch.setattr(trial_module, "convert_model", flaky)
    no_float_layers = SpaceOptions(precision=False)  # every candidate goes through convert_model
    result = search_architecture(
        digits_model, digits, targets=TARGETS, options=_options(space=no_float_layers)
    )
    failed = [r for r in result.trials if not r.ok]
    assert len(failed) == 1 and "injected" in failed[0].error
    assert failed[0].reward is None and failed[0].accuracy is None
    assert len(result.trials) == 4 and sum(r.ok for r in result.trials) == 3
    assert failed[0].trial not in result.pareto


def test_time_budget_stops_early_and_returns_the_best_so_far(digits, digits_model):
    result = search_architecture(
        digits_model,
        digits,
        targets=Targets(min_quality=0.3, max_size_bytes=100),  # the size is unreachable
        # Long enough for the original and a trial on a loaded 2-core box, far short of 50.
        options=_options(max_trials=50, batch_size=1, time_budget_s=8.0),
    )
    assert result.stop_reason.startswith("time budget")
    assert 1 <= len(result.trials) < 50
    assert not result.targets_met
    usable = [r for r in result.trials if r.ok and r.accuracy >= 0.3]
    assert usable and result.best is not None
    # The best so far is the best-rewarded candidate the original does not dominate and that
    # is smaller or faster than it, or the original itself when there is none.
    figures = objectives(result.targets.metric)
    contenders = [
        r
        for r in usable
        if not dominates(result.original, r, figures) and _compresses(r, result.original)
    ]
    if contenders:
        assert result.best.reward == max(r.reward for r in contenders)
    else:
        assert result.best_trial == 0 and result.pareto == (0,)
        assert any("the original is the suggestion" in n for n in result.notes)
    assert any("misses" in n for n in result.notes)


def test_nothing_below_the_accuracy_floor_is_returned_or_suggested(digits, digits_model):
    # Only a resource target: the floor is the default, 1 point below the original. A floor
    # above any trial's accuracy leaves the search with nothing to return.
    result = search_architecture(
        digits_model,
        digits,
        targets=Targets(min_quality=0.999, max_size_bytes=100),
        options=_options(max_trials=3, batch_size=1),
    )
    assert all(r.accuracy < 0.999 for r in result.trials if r.ok)
    assert result.best is None and result.best_trial is None
    assert result.pareto == () and result.suggestions == ()
    assert not any(r.meets_targets for r in result.trials)
    assert any("nothing is returned or suggested" in n for n in result.notes)
    sized = search_architecture(
        digits_model,
        digits,
        targets=Targets(max_size_bytes=100),
        options=_options(max_trials=3, batch_size=1),
    )
    floor = sized.original_accuracy - 0.01
    returned = [sized.best] if sized.best is not None else []
    returned += [sized.record(t) for t in sized.pareto]
    assert all(r.accuracy >= floor - 1e-9 for r in returned)
    assert all(r.accuracy >= floor - 1e-9 for r in sized.trials if r.meets_targets)


def test_targets_met_then_patience_stops_the_search(digits, digits_model):
    result = search_architecture(
        digits_model,
        digits,
        targets=Targets(max_quality_drop=0.99, max_size_bytes=10**7),  # the first trial meets it
        options=_options(max_trials=40, patience=3, batch_size=1, proposer="random"),
    )
    assert result.targets_met and result.first_met_trial == 1
    assert result.stop_reason.startswith("targets met at trial 1")
    assert len(result.trials) < 40


class Scripted:
    """A proposer that proposes the given decision vectors in turn and records what it is told."""

    def __init__(self, script):
        self.script, self.told, self.asked = list(script), {}, []

    def ask(self):
        decisions = self.script[len(self.asked) % len(self.script)]
        self.asked.append(decisions)
        return Proposal(len(self.asked) - 1, decisions)

    def tell(self, proposal_id, value):
        assert proposal_id not in self.told
        self.told[proposal_id] = value


def test_a_repeated_candidate_is_told_its_reward_and_costs_no_trial(digits, digits_model):
    space = SearchSpace(digits_model)
    keep = (0,) * len(space.positions)
    relu1 = next(i for i, p in enumerate(space.positions) if p.layer == "relu1")
    x, y, z = keep, _with(keep, relu1, 1), _with(keep, relu1, 2)
    # batch 1 asks x, x (repeats x of this batch: waits for it), y; batch 2 asks x (evaluated:
    # told at once), z
    proposer = Scripted([x, x, y, x, z])
    result = search_architecture(
        digits_model,
        digits,
        targets=TARGETS,
        options=_options(max_trials=3, batch_size=2),
        proposer=proposer,
    )
    assert [r.plan.key() for r in result.trials] == [space.plan(d).key() for d in (x, y, z)]
    assert result.repeats == 2 and len(proposer.asked) == 5
    assert any("2 proposal(s) repeated" in n for n in result.notes)
    first = result.record(1).reward
    assert first is not None
    assert proposer.told == {
        0: first,
        1: first,
        2: result.record(2).reward,
        3: first,
        4: result.record(3).reward,
    }


def test_a_proposer_that_only_repeats_stops_the_search(digits, digits_model):
    # two candidates in the whole space: relu1's activation kept or set to relu6
    tiny = SpaceOptions(layers=("relu1",), activations=("relu6",))
    result = search_architecture(
        digits_model,
        digits,
        targets=Targets(min_quality=0.999),  # never met
        options=_options(max_trials=10, batch_size=2, proposer="random", space=tiny),
    )
    assert len(result.trials) == 2
    assert len({r.plan.key() for r in result.trials}) == 2
    assert result.stop_reason.startswith(f"the last {MAX_REPEATS_IN_A_ROW} proposals all repeated")
    assert result.repeats >= MAX_REPEATS_IN_A_ROW


def _with(decisions, position, choice):
    out = list(decisions)
    out[position] = choice
    return tuple(out)


def test_same_seed_same_trials_other_seed_other_trials(digits, digits_model):
    runs = [
        search_architecture(digits_model, digits, targets=TARGETS, options=_options(seed=s))
        for s in (5, 5, 6)
    ]
    plans = [[r.plan.key() for r in run.trials] for run in runs]
    assert plans[0] == plans[1]
    assert plans[0] != plans[2]
    accuracies = [[r.accuracy for r in run.trials] for run in runs[:2]]
    assert accuracies[0] == accuracies[1]


def test_apply_plan_reproduces_a_suggested_model_exactly(digits, digits_model):
    result = search_architecture(digits_model, digits, targets=TARGETS, options=_options())
    # A searched candidate when one was kept; else the suggestion is the original (trial 0),
    # measured without fine-tuning, so it is rebuilt without data.
    trial = max(result.models)
    plan = result.record(trial).plan
    data = digits if trial else None
    kept = result.keras_model(trial)
    again = apply_plan(digits_model, plan, data).model
    assert again.to_json() == kept.to_json()
    for a, b in zip(again.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and through YAML, as the studio and the apply_edits step read it
    from zenml_quant.search.edits import EditPlan

    from_yaml = apply_plan(digits_model, EditPlan.from_yaml(plan.to_yaml()), data)
    for a, b in zip(from_yaml.model.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_apply_plan_rebuilds_in_the_space_the_search_drew_the_plan_from(digits_model):
    # A search given its own filter scales writes them into each plan: a user applying the
    # suggestion later (from YAML, without the search's options) gets the same model.
    from zenml_quant.search.apply import plan_meta
    from zenml_quant.search.edits import Edit, EditPlan
    from zenml_quant.search.finetune import FineTuneOptions
    from zenml_quant.search.space import SpaceOptions

    conv = next(layer.name for layer in digits_model.layers if "conv" in layer.name)
    space = SpaceOptions(scales=(0.1875, 0.5))
    meta = plan_meta(3, 0, FineTuneOptions(), None, space)
    plan = EditPlan((Edit(conv, "scale", 0.1875),), model=digits_model.name, meta=meta)
    rebuilt = apply_plan(digits_model, EditPlan.from_yaml(plan.to_yaml())).model
    filters = digits_model.get_layer(conv).filters
    assert rebuilt.get_layer(conv).filters == max(1, round(filters * 0.1875))
    # without the record, the default space has no 0.1875 and says so
    bare = EditPlan((Edit(conv, "scale", 0.1875),), model=digits_model.name)
    with pytest.raises(InvalidOptionError, match="0.1875"):
        apply_plan(digits_model, bare)
    assert "space" not in plan_meta(3, 0, FineTuneOptions(), None, SpaceOptions())
    # a recorded space that is not one says so, before anything is built
    for bad, message in (
        ({"scales": [0.5], "colour": "red"}, "meta.space is malformed"),
        ({"scales": [7.0]}, "SpaceOptions.scales"),
    ):
        broken = EditPlan(plan.edits, model=digits_model.name, meta={**meta, "space": bad})
        with pytest.raises(InvalidOptionError, match=message):
            apply_plan(digits_model, broken)


def test_search_input_errors(digits, digits_model):
    with pytest.raises(InvalidOptionError, match="proposer"):
        SearchOptions(proposer="genetic")
    with pytest.raises(InvalidOptionError, match="max_trials"):
        SearchOptions(max_trials=0)
    with pytest.raises(InvalidOptionError, match="min_quality"):
        Targets(min_quality=98.5)
    from zenml_quant.errors import InvalidDatasetError

    flat = digits.__class__(
        **{**digits.__dict__, "x_val": digits.x_val.reshape(len(digits.x_val), -1)}
    )
    with pytest.raises(InvalidDatasetError, match="fit_to_model"):
        search_architecture(digits_model, flat, targets=TARGETS, options=_options())


def test_with_precisions_each_candidate_gets_the_allocators_plan(digits_model, digits):
    from zenml_quant.convert import convert_model
    from zenml_quant.precisions import op_precisions
    from zenml_quant.search.edits import EditPlan
    from zenml_quant.search.loop import _context
    from zenml_quant.search.types import TrialTask

    allocated = replace(FAST, precisions=("w4a8", "int8", "float"), precision_budget=0.02)
    assert allocated.precisions == ("int4", "int8", "float")
    context = _context(digits_model, digits, _options(evaluation=allocated))
    outcome = trial_module.evaluate_trial(context, TrialTask(0, EditPlan(), 0, fine_tune=False))
    assert outcome.record.ok, outcome.record.error
    plain = convert_model(digits_model, "int8", representative_data=digits.x_train)
    # The digits CNN takes int4 almost for free: the allocator's file is well below int8's.
    assert "int4" in set(op_precisions(outcome.tflite).values())
    assert outcome.record.size_bytes < 0.9 * plain.size_bytes
    with pytest.raises(InvalidOptionError, match="Unknown precision 'int3'"):
        EvaluationOptions(precisions=("int3",))


def test_successive_halving_fine_tunes_the_best_short_trials_in_full(digits, digits_model):
    result = search_architecture(
        digits_model, digits, targets=TARGETS, options=_options(max_trials=6, halving=2)
    )
    rung = {r.trial: r.plan.meta.get("rung") for r in result.trials}
    steps = {r.trial: r.plan.meta["fine_tune"]["steps_per_epoch"] for r in result.trials}
    assert rung[1] == rung[2] == 0 and steps[1] == steps[2] == 2  # half of FAST's 4 batches
    # trial 3 is the better of the first two, fine-tuned in full with the same seed and edits
    first = max((result.record(1), result.record(2)), key=lambda r: (r.reward, -r.trial))
    promoted = result.record(3)
    assert rung[3] == 1 and steps[3] == 4 and promoted.plan.meta["promoted_from"] == first.trial
    assert promoted.plan.key() == first.plan.key()
    assert promoted.plan.meta["seed"] == first.plan.meta["seed"]
    frame = result.history()
    assert frame.loc[frame["trial"] == 3, "rung"].item() == 1.0
    assert np.isnan(frame.loc[frame["trial"] == 0, "rung"].item())
    with pytest.raises(InvalidOptionError, match="halving"):
        SearchOptions(halving=0)


def test_precisions_come_from_the_allocator_when_it_is_on_and_from_the_search_otherwise(
    digits_model,
):
    allocating = EvaluationOptions(precisions=("int4", "int8", "float"))
    by_allocator = SearchOptions(evaluation=allocating)
    by_search = SearchOptions()
    assert by_allocator.space.precision is False and by_search.space.precision is True
    aspects = {
        name: {p.aspect for p in SearchSpace(digits_model, options.space).positions}
        for name, options in (("allocator", by_allocator), ("search", by_search))
    }
    assert "precision" not in aspects["allocator"] and "precision" in aspects["search"]
    assert aspects["allocator"] == aspects["search"] - {"precision"}
    only_int8 = SearchOptions(evaluation=EvaluationOptions(precisions=("int8",)))
    assert only_int8.space.precision is True
    with pytest.raises(InvalidOptionError, match="allocator chooses each layer's precision"):
        SearchOptions(space=SpaceOptions(precision=True), evaluation=allocating)
    with pytest.raises(InvalidOptionError, match="precision is True, False or None"):
        SpaceOptions(precision="float32")


def test_a_local_search_climbs_from_the_best_above_the_floor_the_original_included():
    from zenml_quant.search.edits import Edit, EditPlan
    from zenml_quant.search.loop import _Books
    from zenml_quant.search.types import TrialOutcome, TrialRecord

    targets = Targets(max_quality_drop=0.01, max_size_bytes=50_000)

    def record(trial, accuracy, size, layer=None):
        edits = () if layer is None else (Edit(layer, "activation", "relu6"),)
        return TrialRecord(
            trial,
            EditPlan(edits, model="m"),
            "ok",
            1.0,
            accuracy=accuracy,
            keras_accuracy=0.72,
            size_bytes=size,
        )

    books = _Books(TrialOutcome(record(0, 0.715, 90_000)), targets, SearchOptions())
    assert books.climb_base().trial == 0
    # smaller, so more rewarding, but below the floor (0.72 - 0.01): not a place to climb from
    below = books.add(TrialOutcome(record(1, 0.69, 60_000, "a")))
    assert below.reward > books.records[0].reward and books.best.trial == 1
    assert books.climb_base().trial == 0
    # above the floor and more rewarding than the original: the climb moves there
    books.add(TrialOutcome(record(2, 0.712, 70_000, "b")))
    assert books.climb_base().trial == 2
    # a failed trial never is the base
    books.add(TrialOutcome(TrialRecord(3, EditPlan((), model="m"), "failed", 1.0, error="x")))
    assert books.climb_base().trial == 2
    # and a candidate meeting every target outranks one that only keeps the floor
    books.add(TrialOutcome(record(4, 0.711, 45_000, "c")))
    assert books.climb_base().trial == 4


def test_when_the_original_is_below_its_own_floor_the_climb_follows_the_reward():
    from zenml_quant.search.edits import Edit, EditPlan
    from zenml_quant.search.loop import _Books
    from zenml_quant.search.types import TrialOutcome, TrialRecord

    targets = Targets(max_quality_drop=0.01, max_size_bytes=50_000)
    original = TrialRecord(
        0,
        EditPlan((), model="m"),
        "ok",
        1.0,
        accuracy=0.60,
        keras_accuracy=0.72,
        size_bytes=90_000,
    )
    books = _Books(TrialOutcome(original), targets, SearchOptions())
    plan = EditPlan((Edit("a", "activation", "relu6"),), model="m")
    books.add(
        TrialOutcome(
            TrialRecord(1, plan, "ok", 1.0, accuracy=0.65, keras_accuracy=0.72, size_bytes=80_000)
        )
    )
    assert books.climb_base().trial == 1
