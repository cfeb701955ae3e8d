"""The metrics, their direction, and how targets and the gate follow them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zenml_quant.errors import InvalidDatasetError, InvalidOptionError
from zenml_quant.gate import Champion, GateOptions, decide
from zenml_quant.metrics import METRICS, get_metric, metric_from_dict
from zenml_quant.targets import Targets

MAE = METRICS["mae"]
TOP1 = METRICS["top1"]


def user_metric(labels, outputs):
    """A user metric for the tests: the fraction of outputs within 0.5 of the label."""
    return float(np.mean(np.abs(np.asarray(outputs).reshape(-1) - labels) < 0.5))


def test_top1_and_top5_count_hits():
    outputs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert METRICS["top1"].score(outputs, labels) == pytest.approx(1 / 3)
    assert METRICS["top5"].score(outputs, labels) == 1.0  # 3 classes: top-5 is every class
    hits = METRICS["top1"].per_example(outputs, labels)
    assert hits.tolist() == [1.0, 0.0, 0.0]


def test_binary_accuracy_and_auc_on_one_sigmoid_unit():
    p = np.array([[0.9], [0.2], [0.6], [0.4]])
    y = np.array([1, 0, 0, 1])
    assert METRICS["accuracy"].score(p, y) == 0.5
    assert METRICS["auc"].score(p, y) == pytest.approx(0.75)


def test_regression_errors_and_r2():
    out = np.array([[1.0], [2.0], [4.0]])
    y = np.array([1.5, 2.0, 3.0])
    assert METRICS["mae"].score(out, y) == pytest.approx(0.5)
    assert METRICS["rmse"].score(out, y) == pytest.approx(math.sqrt((0.25 + 1) / 3))
    assert METRICS["r2"].score(y[:, None], y) == 1.0
    # per-example values are oriented so that higher is better, for paired tests
    assert METRICS["mae"].per_example(out, y).tolist() == [-0.5, 0.0, -1.0]


def test_reconstruction_auc_scores_the_error_against_anomaly_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    labels = np.array([0] * 30 + [1] * 10)
    out = x.copy()
    out[30:] += 3.0  # anomalies are reconstructed badly
    assert METRICS["reconstruction_auc"].score(out, labels, x) == 1.0
    assert METRICS["reconstruction_error"].score(out, labels, x) == pytest.approx(
        9.0 * 10 / 40, rel=1e-5
    )
    with pytest.raises(InvalidDatasetError, match="both labels"):
        METRICS["reconstruction_auc"].score(out[:30], labels[:30], x[:30])


def test_regression_targets_must_match_the_output_shape():
    with pytest.raises(InvalidDatasetError, match="must match the model's output shape"):
        MAE.score(np.zeros((3, 2)), np.zeros(3))


def test_user_metric_needs_its_direction():
    spec = f"{__name__}:user_metric"
    with pytest.raises(InvalidOptionError, match="--higher-is-better"):
        get_metric(spec)
    metric = get_metric(spec, higher_is_better=True)
    assert metric.score(np.array([[1.2], [3.0]]), np.array([1.0, 1.0])) == 0.5
    assert metric_from_dict(metric.to_dict()) == metric
    with pytest.raises(InvalidOptionError, match="Cannot import"):
        get_metric("no_such_module_xyz:f", higher_is_better=True)
    with pytest.raises(InvalidOptionError, match="Unknown metric"):
        get_metric("f1")
    with pytest.raises(InvalidOptionError, match="lower is better"):
        get_metric("mae", higher_is_better=True)


def test_direction_aware_comparisons():
    assert MAE.worse_by(0.5, 0.6) == pytest.approx(0.1)
    assert TOP1.worse_by(0.9, 0.8) == pytest.approx(0.1)
    assert MAE.at_least_as_good(0.4, 0.5) and not MAE.at_least_as_good(0.6, 0.5)
    assert not MAE.plausible(-0.1) and not TOP1.plausible(1.2) and not TOP1.plausible(math.nan)


def test_targets_in_the_units_of_an_error_metric():
    # MAE 2.0: drop of 0.5 allowed means an MAE up to 2.5 passes.
    targets = Targets(max_quality_drop=0.5, metric=MAE)
    assert targets.quality_floor(2.0) == 2.5
    assert targets.quality_met(2.0, 2.4) and not targets.quality_met(2.0, 2.6)
    # the default floor for a non-fraction metric is 1 % of the original
    assert Targets(metric=MAE).quality_floor(2.0) == pytest.approx(2.02)
    # min_quality of an error metric is its maximum; the stricter of the two bounds wins
    both = Targets(min_quality=2.2, max_quality_drop=0.5, metric=MAE)
    assert both.quality_floor(2.0) == 2.2
    with pytest.raises(InvalidOptionError, match="min_quality"):
        Targets(min_quality=-1, metric=MAE)
    assert "mae <= 2.2" in both.describe_quality()
    round_trip = Targets.from_dict(both.to_dict())
    assert round_trip == both and round_trip.metric == MAE


def test_old_accuracy_spellings_are_read():
    targets = Targets.from_dict({"min_accuracy": 0.9, "max_accuracy_drop": 0.02})
    assert (targets.min_quality, targets.max_quality_drop) == (0.9, 0.02)
    with pytest.raises(InvalidOptionError, match="not both"):
        Targets.from_dict({"min_accuracy": 0.9, "min_quality": 0.9})


def _mae_candidate(name, mae, baseline=2.0, metric="mae"):
    return {
        "name": name,
        "accuracy": mae,
        "baseline_accuracy": baseline,
        "size_bytes": 1000,
        "metric": metric,
        "higher_is_better": False,
    }


def test_gate_refuses_a_figure_of_another_metric():
    decision = decide(Targets(metric=MAE), [_mae_candidate("int8", 2.0, metric="rmse")])
    assert not decision.passed
    assert "measured by rmse, but the targets are in mae" in decision.reasons[0]


def test_gate_on_mae_passes_lower_errors_and_refuses_higher_ones():
    targets = Targets(max_quality_drop=0.2, metric=MAE)
    decision = decide(targets, [_mae_candidate("int8", 2.1), _mae_candidate("bad", 2.5)])
    assert decision.passed and decision.selected == "int8"
    bad = {c.name: c for c in decision.per_candidate["bad"]}
    assert not bad["quality_drop"].passed and "mae worse by 0.5" in bad["quality_drop"].reason
    # an impossible MAE (negative) never passes
    refused = decide(targets, [_mae_candidate("neg", -0.1)])
    assert not refused.passed and "impossible" in refused.reasons[0]


def test_gate_without_targets_keeps_the_lowest_error_within_the_floor():
    decision = decide(
        Targets(metric=MAE),
        [_mae_candidate("a", 2.01), _mae_candidate("b", 2.005), _mae_candidate("c", 2.3)],
    )
    assert decision.selected == "b"


def test_champion_margin_in_metric_units():
    targets = Targets(max_quality_drop=1.0, metric=MAE)
    champion = Champion(version="3", accuracy=2.0)
    beaten = decide(
        targets,
        [_mae_candidate("int8", 2.4)],
        champion=champion,
        options=GateOptions(champion_margin=0.5),
    )
    assert beaten.passed
    worse = decide(targets, [_mae_candidate("int8", 2.6)], champion=champion)
    assert not worse.passed and any("worse than the champion" in r for r in worse.reasons)
    # a margin of a whole accuracy would let anything pass: refused for fraction metrics
    refused = decide(
        Targets(),
        [{"name": "x", "accuracy": 0.9, "baseline_accuracy": 0.9, "size_bytes": 10}],
        champion=Champion(version="1", accuracy=0.9),
        options=GateOptions(champion_margin=1.0),
    )
    assert not refused.passed and "champion_margin" in refused.reasons[0]
