"""Channel-aware weight inheritance: scaled layers keep the original's strongest filters and the
layers after them the matching rows; re-sized kernels keep the original centred."""

from __future__ import annotations

import numpy as np
from test_search_space import residual_model

from zenml_quant._compat import tf_keras
from zenml_quant.demo import build_demo_cnn
from zenml_quant.search.edits import Edit, EditPlan
from zenml_quant.search.rebuild import apply_edits

L = tf_keras.layers


def _trained_like(model: tf_keras.Model) -> tf_keras.Model:
    """Give every weight distinct random values, so a wrong index cannot go unnoticed."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    for layer in model.layers:  # positive variances for BatchNorm
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return model


def test_scaled_conv_keeps_its_largest_filters_and_the_head_their_rows():
    model = _trained_like(build_demo_cnn())
    edited = apply_edits(model, EditPlan((Edit("conv2", "scale", 0.5),)))
    kernel, bias = model.get_layer("conv2").get_weights()
    norms = np.abs(kernel).sum(axis=(0, 1, 2))
    kept = np.sort(np.argsort(-norms)[:16])
    new_kernel, new_bias = edited.model.get_layer("conv2").get_weights()
    np.testing.assert_array_equal(new_kernel, kernel[..., kept])
    np.testing.assert_array_equal(new_bias, bias[kept])
    # Flatten lays out (4, 4, 32) position by position: rows p * 32 + c for each kept c
    dense = model.get_layer("logits").get_weights()[0]
    rows = np.concatenate([p * 32 + kept for p in range(16)])
    np.testing.assert_array_equal(edited.model.get_layer("logits").get_weights()[0], dense[rows])
    assert set(edited.inherited) == {"conv2", "logits"}
    assert set(edited.transferred) == {"conv1", "bn1"}
    # the rebuilt model computes exactly what the original restricted to those channels does
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    mask = np.zeros(32, "float32")
    mask[kept] = 1.0
    probe = tf_keras.Model(model.inputs, model.get_layer("pool").output)
    pooled = probe(x).numpy() * mask
    head = model.get_layer("logits")
    expected = pooled.reshape(3, -1) @ dense + head.get_weights()[1]
    np.testing.assert_allclose(edited.model(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_scaled_first_conv_carries_its_channels_through_batchnorm_and_the_next_conv():
    model = _trained_like(build_demo_cnn())
    edited = apply_edits(model, EditPlan((Edit("conv1", "scale", 0.25),))).model
    # ranked by the L1 norm of the kernel with the BatchNorm after it folded in
    gamma, _, _, variance = model.get_layer("bn1").get_weights()
    epsilon = model.get_layer("bn1").epsilon
    folded = np.abs(model.get_layer("conv1").get_weights()[0]).sum((0, 1, 2)) * np.abs(
        gamma / np.sqrt(variance + epsilon)
    )
    kept = np.sort(np.argsort(-folded)[:4])
    unfolded = np.abs(model.get_layer("conv1").get_weights()[0]).sum((0, 1, 2))
    assert not np.array_equal(kept, np.sort(np.argsort(-unfolded)[:4]))  # the folding matters
    for old, new in zip(
        model.get_layer("bn1").get_weights(), edited.get_layer("bn1").get_weights()
    ):
        np.testing.assert_array_equal(new, old[kept])
    old_conv2 = model.get_layer("conv2").get_weights()[0]
    np.testing.assert_array_equal(edited.get_layer("conv2").get_weights()[0], old_conv2[:, :, kept])
    # conv2 kept all its filters, so the head is unchanged
    np.testing.assert_array_equal(
        edited.get_layer("logits").get_weights()[0], model.get_layer("logits").get_weights()[0]
    )


def test_grown_layer_keeps_every_original_filter_and_adds_fresh_ones():
    model = _trained_like(build_demo_cnn())
    edited = apply_edits(model, EditPlan((Edit("conv1", "scale", 1.5),))).model
    old = model.get_layer("conv1").get_weights()[0]
    new = edited.get_layer("conv1").get_weights()[0]
    assert new.shape == (3, 3, 1, 24)
    np.testing.assert_array_equal(new[..., :16], old)
    assert not np.allclose(new[..., 16:], 0.0)  # the initialiser, not zeros


def test_larger_kernel_is_the_original_centred_and_computes_the_same():
    model = _trained_like(build_demo_cnn())
    edited = apply_edits(model, EditPlan((Edit("conv1", "replace", "conv5"),)))
    kernel = edited.model.get_layer("conv1").get_weights()[0]
    assert kernel.shape == (5, 5, 1, 16)
    np.testing.assert_array_equal(kernel[1:4, 1:4], model.get_layer("conv1").get_weights()[0])
    assert not kernel[0].any() and not kernel[:, 4].any()
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(edited.model(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert edited.inherited == ("conv1",)


def test_no_correspondence_means_a_fresh_layer():
    model = _trained_like(build_demo_cnn())
    edited = apply_edits(
        model, EditPlan((Edit("conv2", "replace", "sepconv3"), Edit("conv1", "scale", 0.5)))
    )
    # a new layer class: initialised; the head after it keeps its whole weights (same shapes)
    assert edited.initialised == ("conv2",)
    assert "logits" in edited.transferred
    np.testing.assert_array_equal(
        edited.model.get_layer("logits").get_weights()[0],
        model.get_layer("logits").get_weights()[0],
    )


def test_residual_add_inputs_keep_one_channel_set_so_the_layers_after_keep_theirs():
    model = _trained_like(residual_model())
    plan = EditPlan((Edit("stem", "scale", 0.5),))
    old_dw = model.get_layer("dw").get_weights()[0]

    def folded(conv: str, bn: str) -> np.ndarray:
        gamma, _, _, variance = model.get_layer(bn).get_weights()
        norms = np.abs(model.get_layer(conv).get_weights()[0]).sum((0, 1, 2))
        norms = norms * np.abs(gamma / np.sqrt(variance + model.get_layer(bn).epsilon))
        return norms / norms.mean()

    stem, branch = folded("stem", "stem_bn"), folded("branch", "branch_bn")
    assert not np.array_equal(np.argsort(-stem)[:4], np.argsort(-branch)[:4])  # they disagree
    kept = np.sort(np.argsort(-(stem + branch), kind="stable")[:4])
    edited = apply_edits(model, plan)
    assert "dw" in edited.inherited and not edited.initialised
    stem_kernel = model.get_layer("stem").get_weights()[0]
    branch_kernel = model.get_layer("branch").get_weights()[0]
    got = edited.model
    np.testing.assert_array_equal(got.get_layer("stem").get_weights()[0], stem_kernel[..., kept])
    np.testing.assert_array_equal(
        got.get_layer("branch").get_weights()[0], branch_kernel[:, :, kept][..., kept]
    )
    np.testing.assert_array_equal(edited.model.get_layer("dw").get_weights()[0], old_dw[:, :, kept])


def test_maps_stop_where_the_original_tensor_is_gone():
    model = _trained_like(build_demo_cnn())
    # Flatten -> GAP: the head's rows were positions x channels, now channels: no correspondence
    edited = apply_edits(model, EditPlan((Edit("flatten", "head", "gap"),)))
    assert "logits" in edited.initialised
    # conv2 replaced by pooling: what follows saw conv2's channels, now conv1's
    edited = apply_edits(model, EditPlan((Edit("conv2", "replace", "avgpool"),)))
    assert "logits" in edited.initialised
    # a removed pooling layer passes channels one for one: the layers after it still inherit
    model = _trained_like(residual_model())
    plan = EditPlan((Edit("pool", "remove"), Edit("hidden", "scale", 0.5)))
    edited = apply_edits(model, plan)
    assert {"hidden", "logits"} <= set(edited.inherited)
