"""The original, with its post-training quantization, is the search's reference: a candidate it
dominates is never suggested, and when nothing beats it, it is the suggestion."""

from __future__ import annotations

from zenml_quant.search.edits import EditPlan
from zenml_quant.search.loop import SearchOptions, _Books, _result
from zenml_quant.search.types import Targets, TrialOutcome, TrialRecord


def _outcome(trial: int, accuracy: float, size: int, latency: float) -> TrialOutcome:
    record = TrialRecord(
        trial=trial,
        plan=EditPlan(model="m"),
        status="ok",
        seconds=1.0,
        accuracy=accuracy,
        keras_accuracy=accuracy,
        size_bytes=size,
        latency_ms=latency,
    )
    return TrialOutcome(record, tflite=b"file %d" % trial, keras=None)


ORIGINAL = _outcome(0, 0.90, 50_000, 0.10)  # original, with its best post-training quantization
TARGETS = Targets(max_size_bytes=30_000, max_quality_drop=0.02)


def _search(*outcomes: TrialOutcome):
    books = _Books(ORIGINAL, TARGETS, SearchOptions())
    for outcome in outcomes:
        books.add(outcome)
    return _result(books, "max trials", 1.0)


def test_a_candidate_the_original_dominates_is_never_suggested():
    result = _search(
        _outcome(1, 0.89, 60_000, 0.12),  # larger, slower and less accurate: dominated
        _outcome(2, 0.89, 25_000, 0.10),  # smaller: on the front
    )
    assert result.pareto == (2,) and [s.trial for s in result.suggestions] == [2]
    assert result.best_trial == 2


def test_when_nothing_beats_the_original_it_is_the_suggestion_and_says_so():
    result = _search(_outcome(1, 0.89, 60_000, 0.12), _outcome(2, 0.88, 50_000, 0.11))
    assert result.pareto == (0,) and result.best_trial == 0
    assert [s.trial for s in result.suggestions] == [0]
    assert result.tflite(0).content == b"file 0"  # the reference's file is kept
    assert any("the original is the suggestion" in note for note in result.notes)
    assert list(result.suggestions_table()["trial"]) == [0]


def test_a_dominated_best_reward_gives_way_to_a_candidate_on_the_front():
    result = _search(
        # Close to the original and nearer the size target: the higher reward, but the
        # original is as good on every figure and better on two.
        _outcome(1, 0.899, 50_000, 0.10),
        # Larger and less accurate, but faster than the original: not dominated.
        _outcome(2, 0.885, 55_000, 0.09),
    )
    assert result.record(1).reward > result.record(2).reward
    assert result.pareto == (2,) and result.best_trial == 2


def test_a_candidate_with_the_originals_very_figures_is_no_suggestion():
    result = _search(_outcome(1, 0.90, 50_000, 0.10))
    assert result.pareto == (0,) and result.best_trial == 0


def test_a_more_accurate_candidate_that_is_neither_smaller_nor_faster_is_no_suggestion():
    # On the front by accuracy, but the search compresses: it is left out, and the note says
    # which trial and why.
    result = _search(
        _outcome(1, 0.95, 60_000, 0.10),  # +5 points, larger, as fast: not a compression
        _outcome(2, 0.89, 25_000, 0.10),  # smaller
    )
    assert result.pareto == (2,) and result.best_trial == 2
    assert any(
        "Not suggested: trial(s) 1" in note and "neither smaller nor faster" in note
        for note in result.notes
    )
    # With no compression on the front, the original is the suggestion.
    alone = _search(_outcome(1, 0.95, 60_000, 0.12))
    assert alone.pareto == (0,) and alone.best_trial == 0
