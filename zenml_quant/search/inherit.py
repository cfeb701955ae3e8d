"""Channel-aware weight inheritance from the original model into an edited one.

An edited layer whose shapes changed is not started from scratch when a correspondence with the
original exists. This is what makes the search's edits incremental:

- a layer whose filters or units were scaled down keeps the original's filters with the largest
  L1 norm (Li et al., "Pruning Filters for Efficient ConvNets", 2017) after folding the
  BatchNorm that follows it, in their original order; layers whose outputs add up at residual
  joins keep the same channels, ranked by their summed norms (:mod:`.residual`); scaled up, it
  keeps all of them and the extra ones start from the initialiser;
- the layers after it take the matching input rows, and BatchNorm the matching statistics; the
  correspondence is followed through pooling, activations, dropout, global pooling and Flatten
  (whose rows are laid out position by position, channel by channel);
- a convolution whose kernel size changed gets the original kernel centred in the new one, the
  rest zero (Net2Net's function-preserving widening) or the centre of it when it shrank.

Where no correspondence exists (a different layer class, a changed dilation, a Concatenate), the
layer is initialised afresh unless its weight shapes happen to be unchanged, in which case it gets
the original weights as they are. Keras has no such transfer, so it is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .graph import ModelGraph, Node, model_graph
from .residual import selection_norms

__all__ = ["Inheritance", "inherit_weights"]

#: Layers whose output channels are their input channels, one for one.
_PASS_THROUGH = frozenset(
    {
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "Dropout",
        "SpatialDropout2D",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ZeroPadding2D",
        "Cropping2D",
        "GaussianNoise",
    }
)
_MERGE = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})

ChannelMap = np.ndarray  # original channel index per new channel, -1 where there is none


@dataclass(frozen=True)
class Inheritance:
    """Which weighted layers got the original weights whole, in part, or not at all."""

    transferred: tuple[str, ...]
    inherited: tuple[str, ...]
    initialised: tuple[str, ...]


def inherit_weights(
    source: Any, target: Any, source_graph: ModelGraph | None = None
) -> Inheritance:
    """Copy ``source``'s weights into ``target`` (an edited copy with the same layer names).

    Layers with unchanged weight shapes and aligned channels get the weights whole; layers with a
    channel or kernel correspondence get the matching part (``inherited``); the rest keep their
    initialiser (``initialised``).
    """
    source_graph = source_graph or model_graph(source)
    old = {node.name: node for node in source_graph.nodes}
    target_graph = model_graph(target)
    present = {node.name for node in target_graph.nodes}
    norms = selection_norms(source_graph)
    maps: dict[str, ChannelMap | None] = {}
    transferred: list[str] = []
    inherited: list[str] = []
    initialised: list[str] = []
    for node in target_graph.nodes:
        if node.is_input:
            maps[node.name] = np.arange(int(node.output_shape[-1] or 0))
            continue
        original = old.get(node.name)
        in_maps = [maps.get(name) for name in node.inputs]
        in_map = in_maps[0] if len(in_maps) == 1 else _merged(node, in_maps)
        if original is None or not _fed_alike(node, original, old, present):
            in_map = None
        weights = node.layer.get_weights()
        if not weights:
            maps[node.name] = _carried(node, in_map, original, old)
            continue
        if original is None or type(original.layer) is not type(node.layer):
            initialised.append(node.name)
            maps[node.name] = None
            continue
        source_weights = original.layer.get_weights()
        copied, out_map = _layer_weights(
            node, original, source_weights, weights, in_map, norms.get(node.name)
        )
        if copied is None:
            if [w.shape for w in source_weights] == [w.shape for w in weights]:
                node.layer.set_weights(source_weights)
                transferred.append(node.name)
                maps[node.name] = np.arange(int(node.output_shape[-1] or 0))
            else:
                initialised.append(node.name)
                maps[node.name] = None
            continue
        node.layer.set_weights(copied)
        whole = [w.shape for w in source_weights] == [w.shape for w in weights] and all(
            np.array_equal(a, b) for a, b in zip(copied, source_weights)
        )
        (transferred if whole else inherited).append(node.name)
        maps[node.name] = out_map
    return Inheritance(tuple(transferred), tuple(inherited), tuple(initialised))


def _preserves_channels(class_name: str) -> bool:
    return class_name in _PASS_THROUGH or class_name in _MERGE


def _fed_alike(node: Node, original: Node, old: dict[str, Node], present: set[str]) -> bool:
    """Whether ``node`` reads the tensors its original read: the same producers, or producers
    reached through removed layers that kept their channels one for one (a channel map is
    relative to the original tensor of the producer, so it means nothing past a removed
    convolution)."""
    if len(node.inputs) != len(original.inputs):
        return False
    return all(_reaches(got, was, old, present) for got, was in zip(node.inputs, original.inputs))


def _reaches(got: str, was: str, old: dict[str, Node], present: set[str]) -> bool:
    """Whether the tensor ``got`` stands where the original read ``was``: the same layer, or
    ``was`` removed as a channel-keeping layer (or a residual join reduced to one of its inputs)
    on the way back to ``got``."""
    if was == got:
        return True
    removed = old.get(was)
    if was in present or removed is None or not _preserves_channels(removed.class_name):
        return False
    if removed.class_name in _MERGE:  # a removed residual block: its join passes one input on
        return any(_reaches(got, i, old, present) for i in removed.inputs)
    return len(removed.inputs) == 1 and _reaches(got, removed.inputs[0], old, present)


def _merged(node: Node, in_maps: list[ChannelMap | None]) -> ChannelMap | None:
    if node.class_name not in _MERGE or any(m is None for m in in_maps):
        return None
    maps = [m for m in in_maps if m is not None]  # all of them, checked above
    first = maps[0]
    return first if all(np.array_equal(first, m) for m in maps[1:]) else None


def _carried(
    node: Node, in_map: ChannelMap | None, original: Node | None, old: dict[str, Node]
) -> ChannelMap | None:
    """The channel map after a weightless layer (relative to its original's output)."""
    if in_map is None or original is None:
        return None
    if _preserves_channels(node.class_name) and _preserves_channels(original.class_name):
        return in_map  # e.g. ReLU swapped for Activation("hard_swish"): channels one for one
    if node.class_name == "Flatten" and original.class_name == "Flatten":
        source_in = old[original.inputs[0]].output_shape if original.inputs[0] in old else None
        target_in = node.layer.input_shape
        if source_in is None or tuple(source_in[1:-1]) != tuple(target_in[1:-1]):
            return None  # the spatial layout changed: rows no longer line up
        positions = int(np.prod(target_in[1:-1]))
        channels = int(source_in[-1] or 0)
        return np.concatenate(
            [np.where(in_map >= 0, p * channels + in_map, -1) for p in range(positions)]
        )
    return None


def _kept(norms: np.ndarray, count: int) -> ChannelMap:
    """The indices of the ``count`` largest norms in their original order, padded with -1."""
    if count <= len(norms):
        return np.sort(np.argsort(-norms, kind="stable")[:count])
    return np.concatenate([np.arange(len(norms)), -np.ones(count - len(norms), dtype=int)])


def _block(target: np.ndarray, source: np.ndarray, maps: dict[int, ChannelMap]) -> np.ndarray:
    """``target`` with the block where every mapped axis has a source index (>= 0) replaced by
    ``source``'s values there; axes not in ``maps`` must have the same length in both."""
    out = np.array(target, copy=True)
    to, frm = [], []
    for axis in range(out.ndim):
        index = maps.get(axis)
        if index is None:
            to.append(np.arange(out.shape[axis]))
            frm.append(np.arange(out.shape[axis]))
        else:
            valid = np.flatnonzero(index >= 0)
            to.append(valid)
            frm.append(index[valid])
    out[np.ix_(*to)] = source[np.ix_(*frm)]
    return out


def _centred(kernel: np.ndarray, spatial: tuple[int, int]) -> np.ndarray:
    """``kernel`` (kh, kw, ...) cropped or zero-padded about its centre to ``spatial``."""
    out = np.zeros(spatial + kernel.shape[2:], dtype=kernel.dtype)
    (kh, kw), (th, tw) = kernel.shape[:2], spatial
    sh, dh = max((kh - th) // 2, 0), max((th - kh) // 2, 0)
    sw, dw = max((kw - tw) // 2, 0), max((tw - kw) // 2, 0)
    h, w = min(kh, th), min(kw, tw)
    out[dh : dh + h, dw : dw + w] = kernel[sh : sh + h, sw : sw + w]
    return out


def _layer_weights(
    node: Node,
    original: Node,
    source: list[np.ndarray],
    target: list[np.ndarray],
    in_map: ChannelMap | None,
    norms: np.ndarray | None = None,
) -> tuple[list[np.ndarray] | None, ChannelMap | None]:
    """The weights for ``node`` taken from ``original``'s, and its output channel map, or
    ``(None, None)`` when no part of them corresponds. ``norms`` ranks the output channels to
    keep (default: the kernel's own L1 norms)."""

    def ranking(kernel: np.ndarray) -> np.ndarray:
        own = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
        return own if norms is None or norms.shape != own.shape else norms

    if in_map is None:
        return None, None
    cls = node.class_name
    if cls == "BatchNormalization":
        if any(w.ndim != 1 for w in target) or len(in_map) != target[0].shape[0]:
            return None, None
        return [_block(t, s, {0: in_map}) for t, s in zip(target, source)], in_map
    if cls not in ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D"):
        return None, None
    config, old_config = node.layer.get_config(), original.layer.get_config()
    for key in ("dilation_rate", "groups", "depth_multiplier", "use_bias"):
        if config.get(key) != old_config.get(key):
            return None, None
    if int(config.get("depth_multiplier", 1)) != 1:
        return None, None
    bias = len(target) > (2 if cls == "SeparableConv2D" else 1)
    if cls == "Dense":
        if len(in_map) != target[0].shape[0]:
            return None, None
        out_map = _kept(ranking(source[0]), target[0].shape[1])
        weights = [_block(target[0], source[0], {0: in_map, 1: out_map})]
    elif cls == "Conv2D":
        if len(in_map) != target[0].shape[2]:
            return None, None
        out_map = _kept(ranking(source[0]), target[0].shape[3])
        kernel = _centred(source[0], tuple(target[0].shape[:2]))
        weights = [_block(target[0], kernel, {2: in_map, 3: out_map})]
    else:  # depthwise (one filter per channel), then for a separable one the pointwise mix
        if len(in_map) != target[0].shape[2]:
            return None, None
        depthwise = _centred(source[0], tuple(target[0].shape[:2]))
        weights = [_block(target[0], depthwise, {2: in_map})]
        out_map = in_map
        if cls == "SeparableConv2D":
            out_map = _kept(ranking(source[1]), target[1].shape[3])
            weights.append(_block(target[1], source[1], {2: in_map, 3: out_map}))
    if bias:
        weights.append(_block(target[-1], source[-1], {0: out_map}))
    return weights, out_map
