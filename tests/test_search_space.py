"""The search space, the edit format and apply_edits on real tf_keras models."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.demo import build_demo_cnn
from zenml_quant.errors import InvalidModelError, InvalidOptionError
from zenml_quant.models import load_model
from zenml_quant.profile import total_macs
from zenml_quant.search.edits import Edit, EditPlan
from zenml_quant.search.rebuild import apply_edits
from zenml_quant.search.space import SearchSpace, SpaceOptions

L = tf_keras.layers


def residual_model() -> tf_keras.Model:
    """Conv -> BN -> ReLU -> [Conv -> BN] + skip -> ReLU -> DepthwiseConv -> pool -> GAP -> Dense."""
    tf_keras.utils.set_random_seed(3)
    inp = L.Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(8, 3, padding="same", name="branch")(x)
    y = L.BatchNormalization(name="branch_bn")(y)
    x = L.Add(name="add")([x, y])
    x = L.Activation("relu", name="add_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(16, activation="relu", name="hidden")(x)
    out = L.Dense(4, name="logits")(x)
    return tf_keras.Model(inp, out, name="residual")


def mlp() -> tf_keras.Model:
    tf_keras.utils.set_random_seed(4)
    return tf_keras.Sequential(
        [L.Input((10,)), L.Dense(12, activation="tanh", name="h1"), L.Dense(3, name="out")],
        name="mlp",
    )


MODELS = {"demo": build_demo_cnn, "residual": residual_model, "mlp": mlp}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_random_plans_always_build_and_keep_the_output_shape(name):
    model = MODELS[name]()
    space = SearchSpace(model)
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).normal(size=(2, *model.input_shape[1:])).astype("float32")
    seen = set()
    for _ in range(25):
        decisions = space.sample(rng)
        plan = space.plan(decisions)
        seen.add(plan.key())
        # the plan maps back to the same vector, but for edits inside a removed residual
        # block, which the plan drops (they change nothing): then it maps to the same plan
        again = space.decisions(plan)
        if len(plan) == sum(d != 0 for d in decisions):
            assert again == decisions
        assert space.plan(again).key() == plan.key()
        edited = apply_edits(model, plan, space=space).model
        out = edited(x).numpy()
        assert out.shape == (2, *model.output_shape[1:])
        assert np.isfinite(out).all()
        assert space.macs(plan) == total_macs(edited)  # the estimate from shapes is exact
    assert len(seen) >= 8  # the samples really explore the space


def test_choices_that_cannot_build_are_masked():
    space = SearchSpace(build_demo_cnn())
    first = space.positions[0]
    assert (first.layer, first.aspect) == ("conv1", "op")
    assert space.mask([]).all()  # every replacement of conv1 builds (BN follows the channels)
    # Keras has no dilated convolution with strides > 1: that replacement is masked
    tf_keras.utils.set_random_seed(0)
    strided = tf_keras.Sequential(
        [L.Input((16, 16, 1)), L.Conv2D(4, 3, strides=2, name="c"), L.Flatten(), L.Dense(2)]
    )
    space = SearchSpace(strided)
    labels = dict(zip(space.positions[0].labels(), space.mask([])))
    assert labels["conv5"] and labels["sepconv3"] and not labels["dilconv3"]


def test_layers_that_add_up_scale_together_and_keep_the_same_channels():
    model = residual_model()
    space = SearchSpace(model)
    assert space.groups["branch"] == ("stem", "branch")
    offered = {(p.layer, p.aspect) for p in space.positions}
    assert ("stem", "scale") in offered and ("branch", "scale") not in offered
    with pytest.raises(InvalidOptionError, match="scale 'stem' instead"):
        apply_edits(model, EditPlan((Edit("branch", "scale", 0.5),)))
    # scaling the group's first layer scales both inputs of the Add alike
    plan = EditPlan((Edit("stem", "scale", 0.5),))
    edited = apply_edits(model, plan)
    assert edited.model.get_layer("add").output_shape == (None, 12, 12, 4)
    assert edited.model.get_layer("branch").get_weights()[0].shape == (3, 3, 4, 4)
    # a plan that spells the group's scale out on every member means the same
    both = EditPlan((Edit("stem", "scale", 0.5), Edit("branch", "scale", 0.5)))
    assert space.decisions(both) == space.decisions(plan)


def test_weight_transfer_keeps_unchanged_layers_exactly():
    model = build_demo_cnn()
    plan = EditPlan((Edit("conv2", "replace", "sepconv3"), Edit("relu1", "activation", "relu6")))
    edited = apply_edits(model, plan)
    for name in ("conv1", "bn1", "logits"):  # shapes unchanged: pre-trained weights
        for old, new in zip(
            model.get_layer(name).get_weights(), edited.model.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(old, new)
    assert set(edited.transferred) == {"conv1", "bn1", "logits"}
    assert edited.initialised == ("conv2",)
    assert type(edited.model.get_layer("conv2")).__name__ == "SeparableConv2D"
    assert edited.model.get_layer("relu1").get_config()["max_value"] == 6.0


def test_head_to_global_average_pooling_and_filter_scale():
    model = build_demo_cnn()
    plan = EditPlan((Edit("conv2", "scale", 0.5), Edit("flatten", "head", "gap")))
    edited = apply_edits(model, plan).model
    assert edited.get_layer("conv2").filters == 16
    assert type(edited.get_layer("flatten")).__name__ == "GlobalAveragePooling2D"
    assert edited.get_layer("logits").get_weights()[0].shape == (16, 10)


def test_evaluation_cost_ranks_bigger_candidates_first():
    from zenml_quant.search.loop import longest_first
    from zenml_quant.search.types import TrialTask

    model = build_demo_cnn()
    space = SearchSpace(model)
    plans = {
        "pooled": EditPlan((Edit("conv2", "replace", "avgpool"),)),
        "original": EditPlan(()),
        "wider": EditPlan((Edit("conv1", "scale", 1.5), Edit("conv2", "scale", 1.5))),
    }
    costs = {name: space.evaluation_cost(plan) for name, plan in plans.items()}
    assert costs["pooled"] < costs["original"] < costs["wider"]
    tasks = [TrialTask(i, plan, 0) for i, plan in enumerate(plans.values(), start=1)]
    assert [t.trial for t in longest_first(tasks, space)] == [3, 2, 1]
    with pytest.raises(InvalidOptionError, match="not in model"):
        space.evaluation_cost(EditPlan((Edit("nope", "remove"),)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (Edit("nope", "remove"), "not in model"),
        (Edit("logits", "remove"), "cannot take"),
        (Edit("bn1", "scale", 0.5), "cannot be edited"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(edit, message):
    with pytest.raises(InvalidOptionError, match=message):
        apply_edits(build_demo_cnn(), EditPlan((edit,)))


def test_conflicting_edits_on_one_layer_are_refused():
    plan = EditPlan((Edit("conv2", "replace", "maxpool"), Edit("conv2", "scale", 0.5)))
    with pytest.raises(InvalidOptionError, match="conflicts"):
        apply_edits(build_demo_cnn(), plan)


def test_plan_yaml_round_trip_rebuilds_the_same_model(tmp_path):
    model = build_demo_cnn()
    plan = EditPlan(
        (
            Edit("conv1", "scale", 0.75),
            Edit("conv2", "activation", "hard_swish"),
            Edit("pool", "replace", "avgpool"),
            Edit("logits", "precision", "float32"),
        ),
        model=model.name,
    )
    again = EditPlan.from_yaml(plan.to_yaml())
    assert again == plan
    a = apply_edits(model, plan, seed=7).model
    b = apply_edits(model, again, seed=7).model
    assert a.to_json() == b.to_json()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # a hard-swish model saves and loads through the package's loader
    path = tmp_path / "edited.keras"
    a.save(path)
    loaded = load_model(path)
    x = np.ones((1, 8, 8, 1), "float32")
    np.testing.assert_allclose(loaded(x).numpy(), a(x).numpy(), rtol=1e-5)


def test_space_options_narrow_the_space():
    model = build_demo_cnn()
    narrow = SearchSpace(model, SpaceOptions(layers=("conv2",), precision=False, scales=(0.5,)))
    assert {p.layer for p in narrow.positions} == {"conv2"}
    assert [p.aspect for p in narrow.positions] == ["op", "scale", "activation"]
    assert narrow.positions[1].labels() == ["keep", "0.5"]
    with pytest.raises(InvalidOptionError, match="not in model"):
        SearchSpace(model, SpaceOptions(frozen_layers=("conv9",)))
    with pytest.raises(InvalidOptionError, match="replacements"):
        SpaceOptions(replacements=("conv7",))


def test_bad_edits_and_plan_files():
    with pytest.raises(InvalidOptionError, match="Unknown edit operation"):
        Edit("conv1", "prune")
    with pytest.raises(InvalidOptionError, match="takes one of"):
        Edit("conv1", "activation", "sigmoid")
    with pytest.raises(InvalidOptionError, match="two 'scale' edits"):
        EditPlan((Edit("c", "scale", 0.5), Edit("c", "scale", 0.25)))
    with pytest.raises(InvalidOptionError, match="not valid YAML"):
        EditPlan.from_yaml("edits: [")
    with pytest.raises(InvalidOptionError, match="format"):
        EditPlan.from_yaml("format: other/v9\nedits: []")


def test_models_the_search_cannot_edit_are_refused():
    inp = L.Input((4,))
    shared = L.Dense(4, name="shared")
    out = L.Dense(2)(shared(shared(inp)))
    with pytest.raises(InvalidModelError, match="shared layer"):
        SearchSpace(tf_keras.Model(inp, out))


def test_the_precision_menu_is_an_option_and_unknown_precisions_are_refused(digits_model):
    search = SearchSpace(digits_model)
    assert [e.value for e in search.edits_for("conv2") if e.op == "precision"] == ["float32"]
    studio = SearchSpace(digits_model, SpaceOptions(precisions=("float32", "int4")))
    assert [e.value for e in studio.edits_for("conv2") if e.op == "precision"] == [
        "float32",
        "int4",
    ]
    with pytest.raises(InvalidOptionError, match="precisions takes a sequence of int8, float32"):
        SpaceOptions(precisions=("int3",))
