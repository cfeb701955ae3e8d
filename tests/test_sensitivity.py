"""Per-layer int8 sensitivity, fast and exhaustive, on a model with a known culprit."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.report.compress import sensitivity_html
from zenml_quant.selective import SelectiveQuantizer
from zenml_quant.sensitivity import profile_sensitivity


@pytest.fixture(scope="module")
def quantizer(hard_case, wide_digits):
    return SelectiveQuantizer(hard_case, wide_digits.x_train)


def test_exhaustive_ranks_the_outlier_pair_first(hard_case, wide_digits, quantizer):
    report = profile_sensitivity(hard_case, wide_digits, mode="exhaustive", quantizer=quantizer)
    table = report.table
    assert table["measured"].all() and len(table) == len(quantizer.quantizable_layers)
    assert set(report.ranking[:2]) == {"bottleneck", "logits"}
    culprits = table.set_index("layer").loc[["bottleneck", "logits"]]
    # Quantizing either end of the outlier tensor alone costs more than a point ...
    assert (culprits["drop_alone_pts"] > 1).all()
    # ... while every other layer costs little on its own.
    others = table[~table["layer"].isin(["bottleneck", "logits"])]
    assert (others["drop_alone_pts"] < 1).all()
    assert report.float_accuracy - report.int8_accuracy > 0.01
    assert report.evaluations == 2 * len(table) + 1
    assert list(table["rank"]) == list(range(1, len(table) + 1))


def test_fast_mode_measures_only_the_debuggers_suspects(hard_case, wide_digits, quantizer):
    calls = []
    report = profile_sensitivity(
        hard_case,
        wide_digits,
        mode="fast",
        top_k=2,
        quantizer=quantizer,
        progress=lambda done, total, message: calls.append((done, total)),
    )
    table = report.table
    assert table["measured"].sum() == 2
    # The debugger's noise-to-signal singles out the layer that writes the outlier tensor and
    # the one that reads it.
    assert set(table[table["measured"]]["layer"]) == {"bottleneck", "logits"}
    assert table[~table["measured"]]["drop_alone_pts"].isna().all()
    # Fast mode takes the drop alone only: one evaluation per suspect, plus full int8.
    assert (table[table["measured"]]["drop_alone_pts"] > 1).all()
    assert table["drop_all_but_pts"].isna().all()
    assert calls == [(1, 2), (2, 2)]
    assert report.evaluations == 3


def test_debugger_statistics_flag_the_outlier(quantizer, wide_digits):
    errors = quantizer.layer_errors(wide_digits.x_val).set_index("layer")
    # Both ends of the outlier tensor stand out: bottleneck writes it, logits reads it.
    top = errors["noise_to_signal"].nlargest(2).index
    assert set(top) == {"bottleneck", "logits"}
    healthy = errors.drop(index=["bottleneck", "logits"])["noise_to_signal"].dropna()
    assert healthy.max() < 0.1 < errors.loc["bottleneck", "noise_to_signal"]
    assert errors.loc["logits", "input_noise_to_signal"] == pytest.approx(
        errors.loc["bottleneck", "noise_to_signal"]
    )


def test_report_page_has_table_and_chart(hard_case, wide_digits, quantizer):
    report = profile_sensitivity(hard_case, wide_digits, top_k=1, quantizer=quantizer)
    page = sensitivity_html(report)
    assert "<svg" in page and "bottleneck" in page and "fast mode" in page


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": "slow"}, "Unknown sensitivity mode"), ({"top_k": 0}, "top_k")],
)
def test_bad_options(hard_case, wide_digits, kwargs, match):
    with pytest.raises(InvalidOptionError, match=match):
        profile_sensitivity(hard_case, wide_digits, **kwargs)


def test_empty_split_is_refused(hard_case, wide_digits):
    from dataclasses import replace

    empty = replace(
        wide_digits, x_val=wide_digits.x_val[:0], y_val=np.zeros((0,), wide_digits.y_val.dtype)
    )
    with pytest.raises(InvalidOptionError, match="empty"):
        profile_sensitivity(hard_case, empty)
