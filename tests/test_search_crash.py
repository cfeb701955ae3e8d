"""A crash is a failed trial: a native crash in one candidate ends that candidate only.

The search's default executor runs a large model's trials in worker processes, so a segfault
in TensorFlow or TFLite (MobileNetV2 candidates hit one while fine-tuning) fails one trial and
the search goes on; a tiny model's trials run in this process, where a worker start would cost
more than the trials.
"""

from __future__ import annotations

import _executor_tasks as toy
import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.demo import build_demo_cnn
from zenml_quant.errors import InvalidOptionError
from zenml_quant.search import trial as trial_module
from zenml_quant.search.executors import (
    PROCESS_MIN_PARAMS,
    InProcessExecutor,
    ProcessPoolExecutor,
    choice,
    default_executor,
    default_executor_choice,
    resolve_executor,
)
from zenml_quant.search.finetune import FineTuneOptions
from zenml_quant.search.loop import SearchOptions, search_architecture
from zenml_quant.search.space import SpaceOptions
from zenml_quant.search.trial import EvaluationOptions
from zenml_quant.search.types import Targets

FAST = EvaluationOptions(
    fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=1, batch_size=32),
    calibration_samples=16,
    measure_latency=False,
)
TARGETS = Targets(max_quality_drop=0.5, max_size_bytes=12_000)  # reachable: the floor is 0
GiB = 2**30
#: No float32 layers in the space: each candidate is one int8 conversion, not a calibration and
#: three quantizations.
WHOLE_INT8 = SpaceOptions(precision=False)


def _dense(params: int) -> tf_keras.Model:
    """A one-layer model with exactly ``params`` parameters (built, never trained)."""
    return tf_keras.Sequential(
        [tf_keras.layers.Input((params - 1,)), tf_keras.layers.Dense(1)], name=f"dense_{params}"
    )


# --- the default rule -------------------------------------------------------------------------


def test_the_default_executor_follows_the_model_size_and_the_explicit_choice_wins():
    small, large = _dense(PROCESS_MIN_PARAMS - 1), _dense(PROCESS_MIN_PARAMS)
    assert small.count_params() == PROCESS_MIN_PARAMS - 1
    assert build_demo_cnn().count_params() < PROCESS_MIN_PARAMS  # the demo CNN is tiny

    tiny = default_executor_choice(small, batch_size=2, cpus=2, available_memory=64 * GiB)
    assert (tiny.name, tiny.options) == ("inprocess", {})
    assert f"{PROCESS_MIN_PARAMS - 1:,} parameters" in tiny.reason

    # Large: one worker per candidate of a batch, as CPUs and memory allow, CPUs shared out.
    def workers(**kw):
        made = default_executor_choice(large, **kw)
        assert made.name == "process" and "native crash fails that trial only" in made.reason
        assert made.options["import_main"] is False  # an unguarded script still works
        return made.options["workers"], made.options["threads_per_worker"]

    assert workers(batch_size=2, cpus=2, available_memory=64 * GiB) == (2, 1)
    assert workers(batch_size=1, cpus=4, available_memory=64 * GiB) == (1, 4)
    assert workers(batch_size=8, cpus=4, available_memory=64 * GiB) == (4, 1)
    assert workers(batch_size=4, cpus=4, available_memory=int(4.5 * GiB)) == (2, 2)
    assert workers(batch_size=4, cpus=4, available_memory=GiB // 2) == (1, 4)  # at least one

    # Built, not started: no worker process exists until a search starts it.
    pool = default_executor(large, batch_size=1)
    assert isinstance(pool, ProcessPoolExecutor) and pool._pool is None
    assert isinstance(default_executor(small, batch_size=2), InProcessExecutor)

    # A named executor wins over the size, both ways.
    assert isinstance(resolve_executor("inprocess", large), InProcessExecutor)
    named = resolve_executor("process", small, workers=1, threads_per_worker=2)
    assert isinstance(named, ProcessPoolExecutor)
    assert (named.workers, named.threads_per_worker) == (1, 2)
    assert isinstance(resolve_executor(None, small), InProcessExecutor)
    assert isinstance(resolve_executor(None, large), ProcessPoolExecutor)


def test_default_executor_errors_say_what_to_do():
    with pytest.raises(InvalidOptionError, match="need an executor name"):
        resolve_executor(None, _dense(10), workers=2)
    with pytest.raises(InvalidOptionError, match="pass a Keras model, or name the executor"):
        default_executor_choice(object())
    unbuilt = tf_keras.Sequential([tf_keras.layers.Dense(1)], name="unbuilt")
    with pytest.raises(InvalidOptionError, match="'unbuilt'.*build it .* or name the executor"):
        default_executor_choice(unbuilt)
    with pytest.raises(InvalidOptionError, match="batch_size must be a whole number"):
        default_executor_choice(_dense(10), batch_size=0)


# --- a native crash in a real search ----------------------------------------------------------


def test_a_native_crash_fails_one_trial_of_a_search_and_the_search_goes_on(digits, monkeypatch):
    """The default executor of a large model, with trial 2 segfaulting while it converts."""
    # The demo CNN, untrained (the search only needs it to convert and run), counts as large.
    monkeypatch.setattr(choice, "PROCESS_MIN_PARAMS", 1)
    started = []
    real_start = ProcessPoolExecutor.start

    def crashing_start(self, fn, context, *, on_error, native_failure=None):
        started.append((self.workers, self.threads_per_worker, self.import_main))
        wrapped = (fn, context, 2, "segfault")
        real_start(
            self, toy.crash_in_trial, wrapped, on_error=on_error, native_failure=native_failure
        )

    monkeypatch.setattr(ProcessPoolExecutor, "start", crashing_start)
    monkeypatch.setattr(choice, "_usable_cpus", lambda: 1)  # one worker: a sure order
    trial_module._LOADED.clear()

    result = search_architecture(
        build_demo_cnn(),
        digits,
        targets=TARGETS,
        options=SearchOptions(
            max_trials=3,
            batch_size=3,
            seed=5,
            proposer="random",
            space=WHOLE_INT8,
            evaluation=FAST,
        ),
    )

    assert started == [(1, 1, False)]  # no executor given: the size chose a one-worker pool
    assert not trial_module._LOADED  # and no trial ran in this process
    assert [r.trial for r in result.records] == [0, 1, 2, 3]
    crashed = result.record(2)
    assert not crashed.ok and crashed.reward is None and crashed.accuracy is None
    assert "was killed by SIGSEGV (signal 11)" in crashed.error
    # The worker had run other trials, so the crash was checked in a fresh worker first.
    assert "run once more, alone in a fresh worker" in crashed.error
    # faulthandler's report names the Python frames the crash happened in.
    assert "Fatal Python error: Segmentation fault" in crashed.error
    assert "in native_crash" in crashed.error and "in _evaluate" in crashed.error
    assert all(result.record(t).ok for t in (1, 3))
    assert result.stop_reason == "trial budget of 3 used"
    assert 2 not in result.pareto and result.best_trial != 2
    history = result.history()
    assert "SIGSEGV" in history.loc[history["trial"] == 2, "error"].item()
    page = result.html()
    assert "3 trial(s) run: 2 succeeded, 1 failed" in page and "SIGSEGV" in page


def test_a_tensorflow_runtime_abort_is_described_by_its_own_message_and_flagged_native():
    from zenml_quant._compat import tf
    from zenml_quant.search.edits import EditPlan
    from zenml_quant.search.trial import describe_trial_failure, failed_outcome, native_failure
    from zenml_quant.search.types import TrialTask

    exc = tf.errors.AbortedError(
        None, None, "Graph execution error:\n\nDetected at node 'x'\n\nCompute aborted [Op:fit]"
    )
    text = describe_trial_failure(exc)
    assert text == "AbortedError: Graph execution error: Compute aborted [Op:fit]"
    task = TrialTask(1, EditPlan(), 0)
    assert native_failure(failed_outcome(task, text)) == "AbortedError from TensorFlow's runtime"
    # A candidate's own failure (a shape that does not build) is not native trouble.
    assert native_failure(failed_outcome(task, "ValueError: negative dimension")) is None
    assert native_failure(None) is None
