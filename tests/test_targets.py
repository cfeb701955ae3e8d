"""The one targets type: checked when made, the default accuracy floor, used everywhere."""

from __future__ import annotations

import math

import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.targets import DEFAULT_MAX_ACCURACY_DROP, Targets


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("min_quality", 1.5, "min_quality"),
        ("min_quality", -0.1, "min_quality"),
        ("min_quality", math.nan, "finite"),
        ("min_quality", "0.9", "finite"),
        ("max_quality_drop", 1.0, "max_quality_drop"),
        ("max_quality_drop", 2, "max_quality_drop"),
        ("max_quality_drop", -0.01, "max_quality_drop"),
        ("max_size_bytes", 0, "max_size_bytes"),
        ("max_size_bytes", -5, "max_size_bytes"),
        ("max_size_bytes", math.inf, "finite"),
        ("max_peak_memory_bytes", 0, "max_peak_memory_bytes"),
        ("max_latency_ms", 0.0, "max_latency_ms"),
        ("max_latency_ms", True, "finite"),
        ("max_energy_uj", -1.0, "max_energy_uj"),
        ("latency_percentile", "p75", "latency_percentile"),
        ("latency_threads", 0, "latency_threads"),
        ("latency_threads", 1.5, "latency_threads"),
        ("relative_drop", "yes", "relative_drop"),
    ],
)
def test_bad_targets_are_refused_when_made(field, value, words):
    with pytest.raises(InvalidOptionError, match=words):
        Targets(**{field: value})


def test_values_are_normalised():
    targets = Targets(max_size_bytes=50_000.4, latency_threads=2.0)
    assert targets.max_size_bytes == 50_000 and isinstance(targets.max_size_bytes, int)
    assert targets.latency_threads == 2 and targets.latency_key == "p50@2"


def test_the_default_floor_applies_without_an_accuracy_target():
    assert Targets().quality_floor(0.99) == pytest.approx(0.99 - DEFAULT_MAX_ACCURACY_DROP)
    assert Targets(max_size_bytes=1000).quality_floor(0.9) == pytest.approx(0.89)
    assert Targets(min_quality=0.5).quality_floor(0.99) == 0.5
    assert Targets(max_quality_drop=0.05).quality_floor(0.99) == pytest.approx(0.94)
    both = Targets(min_quality=0.97, max_quality_drop=0.05)
    assert both.quality_floor(0.99) == 0.97
    relative = Targets(max_quality_drop=0.1, relative_drop=True)
    assert relative.quality_floor(0.8) == pytest.approx(0.72)
    assert Targets().quality_met(0.99, 0.98) and not Targets().quality_met(0.99, 0.979)
    assert "default floor" in Targets().describe_quality()


def test_round_trip_and_unknown_keys():
    targets = Targets(min_quality=0.9, max_size_bytes=9000, max_latency_ms=2.0)
    assert Targets.from_dict(targets.to_dict()) == targets
    assert Targets.from_dict(None) == Targets()
    with pytest.raises(InvalidOptionError, match="max_size_kb"):
        Targets.from_dict({"max_size_kb": 9})
    assert Targets().empty and not Targets(max_size_bytes=1).empty


def test_the_search_and_the_ptq_budget_use_the_same_type():
    from zenml_quant.search.types import Targets as SearchTargets
    from zenml_quant.types import PTQResult

    assert SearchTargets is Targets
    assert PTQResult.__dataclass_fields__["budget"].type in ("Targets | None",)
