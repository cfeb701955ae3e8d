"""What residual joins impose on edits: channel groups and the shortcut of each join.

**Channel groups.** Tensors that meet at an element-wise merge (``Add`` and its kind) must keep
the same channels. Every layer that sets a channel count (a Conv2D, SeparableConv2D or Dense)
therefore belongs to one group: the layers whose outputs reach a common merge through layers
that keep channels one for one (BatchNorm, activations, pooling, a depthwise convolution). A
group is pruned or widened as one: the search scales its first layer and the others follow,
and all of them keep the same channels, chosen by the summed L1 norms of their BatchNorm-folded
kernels (Li et al. 2017, with the folding of Jacob et al. 2018), so the tensors still add up
channel for channel. In a ResNet each stage's residual stream is one group and each block's
inner convolution its own, which gives every stage its own width (as NetAdapt and AMC prune).

**Shortcuts.** Removing a residual block means its merge returns the shortcut alone. The
shortcut of a two-input merge is the input with fewer weighted layers between the merge and the
nearest layer both inputs descend from (the identity, or a 1x1 projection, against the block's
two convolutions); a merge whose inputs tie has none and cannot be removed.

Keras has no such analysis, so it is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .graph import ModelGraph, Node

__all__ = [
    "MERGE_TYPES",
    "WIDTH_TYPES",
    "channel_groups",
    "expand_group_scales",
    "scalable",
    "selection_norms",
    "shortcut_inputs",
]

#: Layers whose output channel count an edit can set.
WIDTH_TYPES = frozenset({"Conv2D", "SeparableConv2D", "Dense"})
MERGE_TYPES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
#: Single-input layers whose output channels are their input channels, one for one.
_KEEPS_CHANNELS = frozenset(
    {
        "BatchNormalization",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "Dropout",
        "SpatialDropout2D",
        "GaussianNoise",
        "MaxPooling2D",
        "AveragePooling2D",
        "ZeroPadding2D",
        "Cropping2D",
        "DepthwiseConv2D",
    }
)
_WEIGHTED = WIDTH_TYPES | {"DepthwiseConv2D"}


def channel_groups(graph: ModelGraph) -> dict[str, tuple[str, ...]]:
    """``{layer: its group}`` for every Conv2D, SeparableConv2D and Dense of ``graph``.

    A group lists its layers in topological order. A group that also reaches a merge from
    something no edit can resize (a model input, a Concatenate, a layer with several outputs)
    is returned with that fixed source too, as a name that is not a width layer, so callers see
    it cannot be scaled: :func:`scalable` says so.
    """
    order = {node.name: i for i, node in enumerate(graph.nodes)}
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)

    def sources(name: str) -> list[str]:
        node = graph.node(name)
        if node.class_name in WIDTH_TYPES:
            return [name]
        if node.class_name in MERGE_TYPES:
            return [s for i in node.inputs for s in sources(i)]
        if node.class_name in _KEEPS_CHANNELS and len(node.inputs) == 1:
            return sources(node.inputs[0])
        return [name]  # an input or a layer that mixes channels: fixed width

    for node in graph.nodes:
        if node.class_name in WIDTH_TYPES:
            find(node.name)
        if node.class_name in MERGE_TYPES:
            found = [s for i in node.inputs for s in sources(i)]
            for other in found[1:]:
                union(found[0], other)
    members: dict[str, list[str]] = {}
    for name in sorted(parent, key=order.__getitem__):
        members.setdefault(find(name), []).append(name)
    return {
        name: tuple(group)
        for group in members.values()
        for name in group
        if graph.node(name).class_name in WIDTH_TYPES
    }


def scalable(graph: ModelGraph, group: tuple[str, ...]) -> bool:
    """Whether every member of ``group`` is a width layer that is not a model output."""
    return all(
        graph.node(name).class_name in WIDTH_TYPES and name not in graph.outputs for name in group
    )


def expand_group_scales(
    assignment: Mapping[str, Mapping[str, Any]], groups: Mapping[str, tuple[str, ...]]
) -> dict[str, dict[str, Any]]:
    """``assignment`` (``{layer: {op: value}}``) with each group's scale set on all members."""
    out = {layer: dict(edits) for layer, edits in assignment.items()}
    for layer, edits in assignment.items():
        if "scale" not in edits:
            continue
        for member in groups.get(layer, (layer,)):
            if member != layer:
                out.setdefault(member, {})["scale"] = edits["scale"]
    return out


def shortcut_inputs(graph: ModelGraph) -> dict[str, str]:
    """``{merge layer: the input it keeps when its residual branch is removed}``.

    Only two-input merges whose inputs differ in the number of weighted layers since their
    nearest common ancestor are listed.
    """
    order = {node.name: i for i, node in enumerate(graph.nodes)}
    ancestors: dict[str, frozenset[str]] = {}
    for node in graph.nodes:
        ancestors[node.name] = frozenset({node.name}).union(*(ancestors[i] for i in node.inputs))
    out: dict[str, str] = {}
    for node in graph.nodes:
        if node.class_name not in MERGE_TYPES or len(node.inputs) != 2:
            continue
        a, b = node.inputs
        common = ancestors[a] & ancestors[b]
        if not common:
            continue
        nearest = max(common, key=order.__getitem__)
        counts = [
            sum(graph.node(n).class_name in _WEIGHTED for n in ancestors[i] - ancestors[nearest])
            for i in (a, b)
        ]
        if counts[0] != counts[1]:
            out[node.name] = a if counts[0] < counts[1] else b
    return out


def selection_norms(graph: ModelGraph) -> dict[str, np.ndarray]:
    """The norm by which each width layer's output channels are ranked when it is pruned.

    Each layer's L1 norm per output channel of its kernel, multiplied by the scale of the
    BatchNorm that directly follows it (gamma / sqrt(variance + epsilon)), so a channel the
    BatchNorm silences ranks low; divided by its mean so that layers of a group weigh alike,
    and summed over the group.
    """
    groups = channel_groups(graph)
    own: dict[str, np.ndarray] = {}
    for name in groups:
        node = graph.node(name)
        weights = node.layer.get_weights()
        if not weights:
            continue
        kernel = weights[1] if node.class_name == "SeparableConv2D" else weights[0]
        norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0).astype(np.float64)
        norms = norms * _batchnorm_scale(graph, node, len(norms))
        mean = float(norms.mean())
        own[name] = norms / mean if mean > 0 else norms
    out: dict[str, np.ndarray] = {}
    for name, group in groups.items():
        parts = [own[m] for m in group if m in own and len(own[m]) == len(own.get(name, ()))]
        if name in own:
            out[name] = np.sum(parts, axis=0) if parts else own[name]
    return out


def _batchnorm_scale(graph: ModelGraph, node: Node, channels: int) -> np.ndarray:
    consumers = graph.consumers(node.name)
    if len(consumers) != 1 or consumers[0].class_name != "BatchNormalization":
        return np.ones(channels)
    bn = consumers[0].layer
    variance = np.asarray(bn.moving_variance.numpy(), dtype=np.float64)
    gamma = (
        np.asarray(bn.gamma.numpy(), dtype=np.float64)
        if getattr(bn, "gamma", None) is not None
        else np.ones_like(variance)
    )
    if variance.shape != (channels,):
        return np.ones(channels)
    return np.abs(gamma) / np.sqrt(variance + float(bn.epsilon))
