"""The search's reference and its reproducibility: trial 0 is the original exactly as the
converter makes it, and the same seed gives the same trials and suggestions whether the trials
run in this process or in a pool of worker processes."""

from __future__ import annotations

import pytest

from zenml_quant.convert import convert_model
from zenml_quant.interpreter import run_tflite
from zenml_quant.search.executors import InProcessExecutor, ProcessPoolExecutor
from zenml_quant.search.finetune import FineTuneOptions
from zenml_quant.search.loop import SearchOptions, search_architecture
from zenml_quant.search.trial import EvaluationOptions
from zenml_quant.search.types import Targets
from zenml_quant.types import ConversionOptions

FAST = EvaluationOptions(
    fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=3, batch_size=32),
    calibration_samples=32,
    measure_latency=False,
)
TARGETS = Targets(max_quality_drop=0.2, max_size_bytes=12_000)


def test_trial_0_is_the_original_as_the_converter_makes_it(digits, digits_model):
    options = SearchOptions(max_trials=1, batch_size=1, seed=2, evaluation=FAST)
    result = search_architecture(digits_model, digits, targets=TARGETS, options=options)
    # converted as every candidate is: the trial's calibration draw, seeded by the search's seed
    direct = convert_model(
        digits_model,
        "int8",
        representative_data=digits.x_train,
        options=ConversionOptions(calibration_samples=32, seed=2),
    )
    original = result.original
    assert original.plan.edits == () and original.size_bytes == direct.size_bytes
    predictions = run_tflite(direct, digits.x_val).argmax(axis=1)
    assert original.accuracy == pytest.approx(float((predictions == digits.y_val).mean()))
    assert result.tflite(0).content == direct.content


@pytest.mark.parametrize("proposer", ["controller", "local"])
def test_the_same_seed_gives_the_same_search_in_process_and_in_worker_processes(
    digits, digits_model, proposer
):
    options = SearchOptions(
        max_trials=4, batch_size=2, seed=7, proposer=proposer, halving=2, evaluation=FAST
    )
    runs = []
    for executor in (InProcessExecutor(), ProcessPoolExecutor(workers=2)):
        with executor:
            runs.append(
                search_architecture(
                    digits_model, digits, targets=TARGETS, options=options, executor=executor
                )
            )
    here, there = runs
    assert [r.plan.key() for r in here.records] == [r.plan.key() for r in there.records]
    assert [r.accuracy for r in here.records] == [r.accuracy for r in there.records]
    assert [r.size_bytes for r in here.records] == [r.size_bytes for r in there.records]
    assert here.pareto == there.pareto and here.best_trial == there.best_trial
    assert [s.plan.key() for s in here.suggestions] == [s.plan.key() for s in there.suggestions]
