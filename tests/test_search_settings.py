"""A search as a user sets it: one plain object, checked on construction, turned into the loop's
options exactly, and carried by the pipelines' SearchConfig."""

from __future__ import annotations

import dataclasses

import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.integration.configs import NasConfig, SearchConfig, config_from_dict
from zenml_quant.search.settings import SearchSettings, run_search
from zenml_quant.targets import Targets


def test_settings_become_the_loops_options_field_by_field():
    settings = SearchSettings(
        trials=7,
        time_budget_min=2.5,
        seed=4,
        proposer="local",
        halving=4,
        batch_size=3,
        patience=5,
        fine_tune_epochs=2,
        fine_tune_steps=9,
        learning_rate=2e-3,
        distill=False,
        measure_latency=False,
        reward_mode="hard",
        layers=["conv2", "logits"],
        frozen_layers=["conv1"],
        precisions=["int8"],
        search_precision=False,
    )
    options = settings.search_options()
    assert (options.max_trials, options.time_budget_s, options.seed) == (7, 150.0, 4)
    assert (options.proposer, options.halving, options.batch_size, options.patience) == (
        "local",
        4,
        3,
        5,
    )
    tune = options.evaluation.fine_tune
    assert (tune.epochs, tune.steps_per_epoch, tune.learning_rate, tune.distill) == (
        2,
        9,
        2e-3,
        False,
    )
    assert options.reward.mode == "hard" and options.evaluation.measure_latency is False
    assert options.space.layers == ("conv2", "logits") and options.space.frozen_layers == ("conv1",)
    # int8 only: the allocator is off and search_precision=False keeps float32 edits off too.
    assert options.space.precision is False and not options.evaluation.allocates
    # A latency target measures latency whatever measure_latency says.
    assert settings.search_options(latency_target=True).evaluation.measure_latency is True


def test_defaults_match_the_loops_defaults():
    from zenml_quant.search.loop import SearchOptions

    mine, loops = SearchSettings().search_options(), SearchOptions()
    for name in ("max_trials", "time_budget_s", "patience", "batch_size", "halving", "seed"):
        assert getattr(mine, name) == getattr(loops, name), name
    assert mine.evaluation.fine_tune == loops.evaluation.fine_tune
    assert mine.reward == loops.reward


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(InvalidOptionError) as error:
        SearchSettings(
            trials=-1, halving=0, learning_rate=0, proposer="greedy", executor="gpu", workers=0
        )
    message = str(error.value)
    for words in (
        "trials=-1",
        "halving=0",
        "workers=0",
        "learning_rate=0",
        "proposer='greedy' (use one of controller, random, local)",
        "executor='gpu' (use one of inprocess, process, ray)",
    ):
        assert words in message, message
    with pytest.raises(InvalidOptionError, match=r"write \[conv1\]"):
        SearchSettings(frozen_layers="conv1")
    with pytest.raises(InvalidOptionError, match="int3"):
        SearchSettings(precisions=("int3",))


def test_the_executor_gets_only_its_own_options():
    assert SearchSettings(executor="process", workers=3).executor_options() == {"workers": 3}
    ray = SearchSettings(executor="ray", ray_address="ray://head:10001")
    assert ray.executor_options() == {"address": "ray://head:10001"}
    assert SearchSettings(workers=3).executor_options() == {}


def test_the_pipeline_config_carries_every_setting_and_hands_the_step_them_without_candidates():
    config = config_from_dict(
        NasConfig, {"search": {"trials": 5, "candidates": 2, "proposer": "local", "layers": ["a"]}}
    )
    assert isinstance(config.search, SearchConfig) and config.search.candidates == 2
    settings = config.search.settings()
    assert type(settings) is SearchSettings
    assert dataclasses.asdict(settings) == {
        k: v for k, v in dataclasses.asdict(config.search).items() if k != "candidates"
    }
    assert settings.layers == ("a",) and settings.proposer == "local"
    with pytest.raises(InvalidOptionError, match="proposer='best'"):
        config_from_dict(NasConfig, {"search": {"proposer": "best"}})
    with pytest.raises(InvalidOptionError, match="candidates"):
        SearchConfig(candidates=9)
    assert SearchConfig().trials == 0  # compress: no search unless asked


def test_run_search_refuses_no_target_and_no_trial_before_any_work():
    with pytest.raises(InvalidOptionError, match="at least one target"):
        run_search(None, None, targets=Targets(), settings=SearchSettings())
    with pytest.raises(InvalidOptionError, match="at least 1 trial"):
        run_search(
            None, None, targets=Targets(max_size_bytes=1000), settings=SearchSettings(trials=0)
        )
