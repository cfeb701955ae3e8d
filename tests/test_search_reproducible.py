"""The search's reference and its reproducibility: trial 0 is the original exactly as the
converter makes it, and the same seed gives the same trials and suggestions whether the trials
run in this process or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing

import pytest
from _search_child import inprocess_search, summary

from zenml_quant.convert import convert_model
from zenml_quant.interpreter import run_tflite
from zenml_quant.models import load_model
from zenml_quant.search.executors import ProcessPoolExecutor
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
    digits, digits_model_path, proposer
):
    """Both sides train with one TensorFlow thread (the pool's workers always do; the in-process
    side runs in a fresh process, where the thread count can still be set), so that the
    comparison is of the search, not of float sums in another order."""
    kwargs = {"max_trials": 4, "batch_size": 2, "seed": 7, "halving": 2, "evaluation": FAST}
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as child:
        here = child.apply(
            inprocess_search, (str(digits_model_path), proposer, {**kwargs, "targets": TARGETS})
        )
    model = load_model(digits_model_path)
    with ProcessPoolExecutor(workers=2, threads_per_worker=1) as pool:
        options = SearchOptions(proposer=proposer, **kwargs)
        there = summary(
            search_architecture(model, digits, targets=TARGETS, options=options, executor=pool)
        )
    assert here == there
