"""Edits across residual joins on the MLPerf Tiny ResNet-8: channel groups pruned as one with
their weights kept, and whole residual blocks removed."""

from __future__ import annotations

import numpy as np
import pytest
from _zoo_path import ROOT  # noqa: F401  (puts the zoo on the path)
from test_search_inherit import _trained_like

from zenml_quant._compat import tf_keras
from zenml_quant.errors import InvalidOptionError
from zenml_quant.search.edits import Edit, EditPlan
from zenml_quant.search.rebuild import apply_edits
from zenml_quant.search.space import SearchSpace
from zoo.resnet import resnet8


@pytest.fixture(scope="module")
def model() -> tf_keras.Model:
    tf_keras.utils.set_random_seed(5)
    return _trained_like(resnet8())


def _copy(model: tf_keras.Model) -> tf_keras.Model:
    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(2).normal(size=(n, 32, 32, 3)).astype("float32")


def _folded(model: tf_keras.Model, conv: str, bn: str | None) -> np.ndarray:
    norms = np.abs(model.get_layer(conv).get_weights()[0]).sum((0, 1, 2))
    if bn is not None:
        layer = model.get_layer(bn)
        gamma, _, _, variance = layer.get_weights()
        norms = norms * np.abs(gamma / np.sqrt(variance + layer.epsilon))
    return norms / norms.mean()


def test_each_stage_stream_and_each_inner_convolution_is_its_own_group(model):
    space = SearchSpace(model)
    assert space.groups["stage1_conv2"] == ("stem_conv", "stage1_conv2")
    assert space.groups["stage3_conv2"] == ("stage3_shortcut", "stage3_conv2")
    assert space.groups["stage2_conv1"] == ("stage2_conv1",)
    assert space.shortcuts == {
        "stage1_add": "stem_relu",
        "stage2_add": "stage2_shortcut",
        "stage3_add": "stage3_shortcut",
    }
    scaled = [p.layer for p in space.positions if p.aspect == "scale"]
    assert scaled == [
        "stem_conv",
        "stage1_conv1",
        "stage2_conv1",
        "stage2_shortcut",
        "stage3_conv1",
        "stage3_shortcut",
    ]
    with pytest.raises(InvalidOptionError, match="scale 'stage3_shortcut' instead"):
        apply_edits(model, EditPlan((Edit("stage3_conv2", "scale", 0.5),), model=model.name))


def test_pruning_a_stage_keeps_one_channel_set_across_the_join_and_computes_the_same(model):
    plan = EditPlan((Edit("stage3_shortcut", "scale", 0.5),), model=model.name)
    edited = apply_edits(model, plan)
    norms = _folded(model, "stage3_shortcut", None) + _folded(model, "stage3_conv2", "stage3_bn2")
    kept = np.sort(np.argsort(-norms, kind="stable")[:32])
    pruned = np.setdiff1d(np.arange(64), kept)
    new = edited.model
    for conv in ("stage3_shortcut", "stage3_conv2"):
        old_kernel, old_bias = model.get_layer(conv).get_weights()
        kernel, bias = new.get_layer(conv).get_weights()
        np.testing.assert_array_equal(kernel, old_kernel[..., kept])
        np.testing.assert_array_equal(bias, old_bias[kept])
    for old, got in zip(
        model.get_layer("stage3_bn2").get_weights(), new.get_layer("stage3_bn2").get_weights()
    ):
        np.testing.assert_array_equal(got, old[kept])
    np.testing.assert_array_equal(
        new.get_layer("predictions").get_weights()[0],
        model.get_layer("predictions").get_weights()[0][kept],
    )
    for name in ("stem_conv", "stage2_conv2", "stage3_conv1", "stage3_bn1"):
        for old, got in zip(model.get_layer(name).get_weights(), new.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, old)
    assert set(edited.initialised) == set()
    # the original with the pruned channels silenced on both sides of the join
    silenced = _copy(model)
    kernel, bias = silenced.get_layer("stage3_shortcut").get_weights()
    kernel[..., pruned], bias[pruned] = 0.0, 0.0
    silenced.get_layer("stage3_shortcut").set_weights([kernel, bias])
    gamma, beta, mean, variance = silenced.get_layer("stage3_bn2").get_weights()
    gamma[pruned], beta[pruned] = 0.0, 0.0
    silenced.get_layer("stage3_bn2").set_weights([gamma, beta, mean, variance])
    x = _images()
    np.testing.assert_allclose(new(x).numpy(), silenced(x).numpy(), rtol=1e-5, atol=1e-6)


def test_pruning_the_first_stage_reaches_through_the_identity_shortcut(model):
    plan = EditPlan((Edit("stem_conv", "scale", 0.5),), model=model.name)
    new = apply_edits(model, plan).model
    assert new.get_layer("stage1_add").output_shape == (None, 32, 32, 8)
    norms = _folded(model, "stem_conv", "stem_bn") + _folded(model, "stage1_conv2", "stage1_bn2")
    kept = np.sort(np.argsort(-norms, kind="stable")[:8])
    old = model.get_layer("stage1_conv1").get_weights()[0]
    np.testing.assert_array_equal(new.get_layer("stage1_conv1").get_weights()[0], old[:, :, kept])
    old = model.get_layer("stage2_shortcut").get_weights()[0]
    np.testing.assert_array_equal(
        new.get_layer("stage2_shortcut").get_weights()[0], old[:, :, kept]
    )


def test_removing_a_residual_block_keeps_its_shortcut_and_every_other_weight(model):
    space = SearchSpace(model)
    plan = EditPlan((Edit("stage2_add", "remove"),), model=model.name)
    edited = apply_edits(model, plan, space=space)
    names = {layer.name for layer in edited.model.layers}
    assert not {"stage2_conv1", "stage2_bn1", "stage2_conv2", "stage2_bn2"} & names
    assert space.macs(plan) < space.macs(EditPlan((), model=model.name))
    assert set(edited.initialised) == set() and set(edited.inherited) == set()
    # the original whose residual branch outputs zeros computes the same
    silenced = _copy(model)
    gamma, beta, mean, variance = silenced.get_layer("stage2_bn2").get_weights()
    silenced.get_layer("stage2_bn2").set_weights([0 * gamma, 0 * beta, mean, variance])
    x = _images()
    np.testing.assert_allclose(edited.model(x).numpy(), silenced(x).numpy(), rtol=1e-5, atol=1e-6)


def test_a_removed_block_and_a_pruned_stage_combine(model):
    plan = EditPlan(
        (Edit("stage1_add", "remove"), Edit("stem_conv", "scale", 0.75)), model=model.name
    )
    new = apply_edits(model, plan).model
    assert new.get_layer("stage1_relu2").output_shape == (None, 32, 32, 12)
    assert new(_images(2)).shape == (2, 10)


def test_edits_inside_a_removed_block_are_dropped_from_the_plan(model):
    space = SearchSpace(model)
    chosen = {
        ("stage2_conv1", "precision"): "float32",
        ("stage2_conv2", "op"): "sepconv3",
        ("stage2_add", "op"): None,  # remove
        ("stage3_conv1", "scale"): 0.5,
    }
    decisions = []
    for position in space.positions:
        want = (position.layer, position.aspect)
        pick = 0
        if want in chosen:
            pick = next(
                j
                for j, c in enumerate(position.choices)
                if c is not None and c.value == chosen[want]
            )
        decisions.append(pick)
    plan = space.plan(decisions)
    assert {(e.layer, e.op) for e in plan.edits} == {
        ("stage2_add", "remove"),
        ("stage3_conv1", "scale"),
    }
    assert space.live_layers(plan).isdisjoint({"stage2_conv1", "stage2_conv2"})


def test_the_weight_count_from_shapes_is_the_built_models(model):
    space = SearchSpace(model)

    def built(plan):
        edited = apply_edits(model, plan, space=space).model
        kinds = ("Conv2D", "Dense", "SeparableConv2D", "DepthwiseConv2D")
        return sum(layer.count_params() for layer in edited.layers if type(layer).__name__ in kinds)

    for plan in (
        EditPlan((), model=model.name),
        EditPlan(
            (
                Edit("stage3_shortcut", "scale", 0.5),
                Edit("stage2_add", "remove"),
                Edit("stage1_conv1", "replace", "sepconv5"),
                Edit("flatten", "head", "gap"),
            ),
            model=model.name,
        ),
    ):
        assert space.weight_count(plan) == built(plan)


def test_weight_bytes_count_each_layer_at_its_precision(model):
    from zenml_quant.search.edits import EDIT_PRECISIONS as PRECISIONS
    from zenml_quant.search.space import WEIGHT_BYTES

    assert set(WEIGHT_BYTES) == set(PRECISIONS)
    space = SearchSpace(model)
    original = EditPlan((), model=model.name)
    assert space.weight_bytes(original) == space.weight_count(original)
    as_float = EditPlan((Edit("stage3_conv1", "precision", "float32"),), model=model.name)
    as_int4 = EditPlan((Edit("stage3_conv1", "precision", "int4"),), model=model.name)
    kernel = model.get_layer("stage3_conv1").count_params()
    assert space.weight_count(as_float) == space.weight_count(original)
    # float32 is never a saving: 3 more bytes a weight; int4 half a byte less
    assert space.weight_bytes(as_float) == space.weight_count(original) + 3 * kernel
    assert space.weight_bytes(as_int4) == space.weight_count(original) - 0.5 * kernel


def test_the_local_proposer_shrinks_by_weight_bytes_for_a_size_target_else_by_macs(model):
    from zenml_quant.search.loop import SearchOptions, make_proposer
    from zenml_quant.search.types import Targets

    space = SearchSpace(model)
    options = SearchOptions(proposer="local")
    decisions = space.decisions(
        EditPlan(
            (Edit("stage3_conv1", "precision", "float32"), Edit("stem_conv", "scale", 0.75)),
            model=model.name,
        )
    )
    plan = space.plan(decisions)
    by_size = make_proposer(space, options, Targets(max_quality_drop=0.01, max_size_bytes=5000))
    assert by_size.cost(decisions) == space.weight_bytes(plan)
    # scaling the stem saves weights, but keeping stage3_conv1 in float32 costs more bytes
    assert by_size.cost(decisions) > by_size.cost(space.decisions(EditPlan((), model=model.name)))
    by_latency = make_proposer(space, options, Targets(max_quality_drop=0.01, max_latency_ms=1))
    assert by_latency.cost(decisions) == space.macs(plan)
    assert make_proposer(space, options, Targets(max_quality_drop=0.01)).cost is None


def test_disruption_counts_the_edits_that_give_a_layer_a_new_function(model):
    space = SearchSpace(model)
    keeps = EditPlan(
        (
            Edit("stage3_shortcut", "scale", 0.5),
            Edit("stage2_add", "remove"),
            Edit("stage3_conv1", "precision", "int4"),
        ),
        model=model.name,
    )
    assert space.disruption(keeps) == 0
    swaps = EditPlan(
        (*keeps.edits, Edit("stage1_conv1", "replace", "sepconv5"), Edit("flatten", "head", "gap")),
        model=model.name,
    )
    assert space.disruption(swaps) == 2


def test_the_local_proposer_prunes_first_when_a_resnet_is_over_its_size_goal(model):
    from zenml_quant.search.loop import SearchOptions, make_proposer
    from zenml_quant.search.types import Targets

    space = SearchSpace(model)
    original = space.decisions(EditPlan((), model=model.name))
    local = make_proposer(
        space, SearchOptions(proposer="local"), Targets(max_quality_drop=0.01, max_size_bytes=1)
    )
    local.anchor(0.5)
    goal = 0.6 * local.cost(original)
    local.pressure(True, goal)
    plans = [space.plan(local.ask().decisions) for _ in range(6)]
    for plan in plans:  # within budget, one or two moves, each keeping the weights it can
        assert local.cost(space.decisions(plan)) <= goal
        assert space.disruption(plan) == 0 and 1 <= len(plan.edits) <= 2
    assert any(edit.op == "scale" for plan in plans for edit in plan.edits)
    costs = [local.cost(space.decisions(plan)) for plan in plans]
    assert costs == sorted(costs, reverse=True)  # the smallest cuts that reach it first
