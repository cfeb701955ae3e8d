"""The search space over a pre-trained model, position by position, declared in one place.

Each editable layer contributes up to five positions, in this order: its operator (replace or
remove), its filter/unit scale, its activation, its head (a Flatten feeding a Dense becomes
global average pooling) and its precision (int8, or float32 inside the int8 model). Choice 0
of every position keeps the original. A choice is offered only if the model stays shape-valid
with it and every later position kept: shapes are propagated with the layers' own
``compute_output_shape``, so a sampled model always builds (residual ``Add`` branches must
keep matching shapes; a BatchNorm follows its convolution's channel count). Layers tied by
residual joins (:mod:`.residual`) take one scale, on the group's first layer, and a residual
join can be removed, leaving its shortcut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidOptionError
from ..profile import layer_macs
from .edits import ACTIVATIONS, EDIT_PRECISIONS, REPLACEMENTS, SCALES, Edit, EditPlan
from .graph import ModelGraph, Node, Shape, model_graph
from .operators import (
    ACTIVATION_TYPES,
    CONV_TYPES,
    POOL_TYPES,
    WEIGHTED_TYPES,
    current_activation,
    edited_layer,
)
from .residual import (
    MERGE_TYPES,
    WIDTH_TYPES,
    channel_groups,
    expand_group_scales,
    scalable,
    shortcut_inputs,
)

__all__ = ["ELEMENTWISE_COST", "Position", "SearchSpace", "SpaceOptions"]

#: MACs one activation element costs in :meth:`SearchSpace.evaluation_cost`: the least-squares
#: fit of 8 random MNIST candidates' evaluation times (fine-tune, convert, evaluate) on MACs and
#: activation elements gave 24.
ELEMENTWISE_COST = 24

#: Position kinds in the order they are decided within a layer.
ASPECTS = ("op", "scale", "activation", "head", "precision")
#: Bytes a weight takes at each precision (``EDIT_PRECISIONS``), for :meth:`SearchSpace.weight_bytes`.
WEIGHT_BYTES = {
    "int8": 1.0,
    "float32": 4.0,
    "int4": 0.5,
    "int4_weights": 0.5,
    "int8_weights": 1.0,
    "int16x8": 1.0,
    "float16_weights": 2.0,
}
_NOT_A_LAYER = ("remove", "avgpool", "maxpool")  # after these the layer has nothing left to set
_THROUGH = frozenset({"Dropout", "Activation", "ReLU", "BatchNormalization"})


@dataclass(frozen=True)
class SpaceOptions:
    """Narrows the space. ``layers``: only these may change (None: all editable layers);
    ``frozen_layers``: never change; the other fields list the choices allowed everywhere."""

    layers: tuple[str, ...] | None = None
    frozen_layers: tuple[str, ...] = ()
    replacements: tuple[str, ...] = REPLACEMENTS
    allow_remove: bool = True
    activations: tuple[str, ...] = ACTIVATIONS
    scales: tuple[float, ...] = SCALES
    heads: bool = True
    #: Whether a layer's precision is a choice. None (the default) lets the search decide:
    #: off when its evaluation allocates precisions per layer (the allocator chooses them from
    #: measured sensitivity), on otherwise (float32 inside the int8 model).
    precision: bool | None = None
    #: What a precision edit may set a layer with weights to (the search proposes float32
    #: only; the studio offers every precision).
    precisions: tuple[str, ...] = ("float32",)

    def __post_init__(self) -> None:
        for name, given, valid in (
            ("replacements", self.replacements, REPLACEMENTS),
            ("activations", self.activations, ACTIVATIONS),
            ("precisions", self.precisions, EDIT_PRECISIONS),
        ):
            unknown = [v for v in given if v not in valid]
            if isinstance(given, str) or unknown:
                raise InvalidOptionError(
                    f"SpaceOptions.{name} takes a sequence of {', '.join(valid)}; got {given!r}."
                )
        bad = [s for s in self.scales if isinstance(s, bool) or not 0 < float(s) <= 4 or s == 1]
        if bad:
            raise InvalidOptionError(
                f"SpaceOptions.scales are factors other than 1 in (0, 4], e.g. (0.5, 1.5); got "
                f"{bad!r}."
            )
        for name in ("layers", "frozen_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise InvalidOptionError(f"SpaceOptions.{name} is a sequence of layer names.")
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if not (self.precision is None or isinstance(self.precision, bool)):
            raise InvalidOptionError(
                f"SpaceOptions.precision is True, False or None; got {self.precision!r}."
            )
        object.__setattr__(self, "replacements", tuple(self.replacements))
        object.__setattr__(self, "activations", tuple(self.activations))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))


@dataclass(frozen=True)
class Position:
    """One decision: a layer, an aspect, and its choices (index 0 keeps the original)."""

    layer: str
    aspect: str
    choices: tuple[Edit | None, ...]

    def labels(self) -> list[str]:
        return [
            "keep" if c is None else (c.op if c.value is None else str(c.value))
            for c in self.choices
        ]


class SearchSpace:
    """The positions of one model and the rules for which choices are valid.

    Implements the ``DecisionSpace`` protocol of the proposers (``sizes``, ``mask``), and turns
    decision vectors into :class:`EditPlan` objects and back.
    """

    def __init__(self, model: Any, options: SpaceOptions | None = None) -> None:
        self.options = options or SpaceOptions()
        self.graph: ModelGraph = model_graph(model)
        self.model_name = self.graph.name
        #: Layers whose channels are tied by residual joins (see :mod:`.residual`).
        self.groups: dict[str, tuple[str, ...]] = channel_groups(self.graph)
        #: ``{merge layer: the input it keeps when its residual branch is removed}``.
        self.shortcuts: dict[str, str] = shortcut_inputs(self.graph)
        self._check_layer_names()
        self.positions: tuple[Position, ...] = tuple(self._positions())
        self.sizes: tuple[int, ...] = tuple(len(p.choices) for p in self.positions)
        self._cache: dict[Any, Shape | str] = {}

    # -- the protocol the proposers use ------------------------------------------------------
    def mask(self, prefix: Sequence[int]) -> np.ndarray:
        """Which choices at position ``len(prefix)`` keep the model valid after ``prefix``."""
        i = len(prefix)
        if i >= len(self.positions):
            raise InvalidOptionError(f"The space has {len(self.positions)} positions; no more.")
        base = self._assignment(prefix)
        position = self.positions[i]
        mask = np.zeros(len(position.choices), dtype=bool)
        for c, choice in enumerate(position.choices):
            edits = dict(base.get(position.layer, {}))
            if choice is not None:
                if not _coherent(edits, choice):
                    continue
                edits[choice.op] = choice.value
            trial = {**base, position.layer: edits}
            mask[c] = self._problem(trial) is None
        if not mask.any():  # cannot happen from a valid prefix: keeping is always valid there
            raise InvalidOptionError(f"No valid choice at {position.layer}/{position.aspect}.")
        return mask

    # -- plans ----------------------------------------------------------------------------------
    def plan(self, decisions: Sequence[int]) -> EditPlan:
        """The edit plan of a full decision vector."""
        if len(decisions) != len(self.positions):
            raise InvalidOptionError(
                f"Expected {len(self.positions)} decisions, got {len(decisions)}."
            )
        edits = []
        for position, d in zip(self.positions, decisions):
            choice = position.choices[int(d)]
            if choice is not None:
                edits.append(choice)
        # Edits of a residual branch that a removed join cuts away change nothing: dropped, so
        # the plan says what the model is (and a precision never names a missing layer).
        live = self._live(self._assignment(decisions))
        return EditPlan(tuple(e for e in edits if e.layer in live), model=self.model_name)

    def decisions(self, plan: EditPlan) -> tuple[int, ...]:
        """The decision vector of ``plan``; raises InvalidOptionError naming a bad edit."""
        index = {
            (p.layer, c.op, c.value): (i, j)
            for i, p in enumerate(self.positions)
            for j, c in enumerate(p.choices)
            if c is not None
        }
        decisions = [0] * len(self.positions)
        scales = {e.layer: e.value for e in plan.edits if e.op == "scale"}
        for edit in plan.edits:
            group = self.groups.get(edit.layer, ())
            if edit.op == "scale" and group[:1] != (edit.layer,) and group:
                if scales.get(group[0]) == edit.value:
                    continue  # a plan that spells out the group's scale on every member
            hit = index.get((edit.layer, edit.op, edit.value))
            if hit is None:
                raise InvalidOptionError(self._unknown_edit(edit))
            decisions[hit[0]] = hit[1]
        self.validate(plan)
        return tuple(decisions)

    def structural_edits(self, plan: EditPlan) -> dict[str, dict[str, Any]]:
        """``{layer: {op: value}}`` of ``plan`` without precisions, with each channel group's
        scale carried to all its layers: what the rebuilt model applies."""
        assignment = self._valid_assignment(plan)
        return {
            layer: {k: v for k, v in edits.items() if k != "precision"}
            for layer, edits in expand_group_scales(assignment, self.groups).items()
        }

    def live_layers(self, plan: EditPlan) -> frozenset[str]:
        """The layers that still reach an output once ``plan``'s removed residual branches
        are cut away."""
        return self._live(self._valid_assignment(plan))

    def validate(self, plan: EditPlan) -> None:
        """Raise InvalidOptionError with the reason when ``plan`` does not give a valid model."""
        self._valid_assignment(plan)

    def _valid_assignment(self, plan: EditPlan) -> dict[str, dict[str, Any]]:
        assignment: dict[str, dict[str, Any]] = {}
        known = {n.name for n in self.graph.nodes if not n.is_input}
        for edit in plan.edits:
            if edit.layer not in known:
                raise InvalidOptionError(self._unknown_edit(edit))
            edits = assignment.setdefault(edit.layer, {})
            if not _coherent(edits, edit) or not _coherent(
                {edit.op: edit.value}, *(Edit(edit.layer, op, v) for op, v in edits.items())
            ):
                raise InvalidOptionError(
                    f"Edit {edit.describe()!r} conflicts with the other edits of {edit.layer!r}: "
                    "a removed or pooled layer takes no scale, activation or precision edit."
                )
            edits[edit.op] = edit.value
        problem = self._problem(assignment)
        if problem is not None:
            raise InvalidOptionError(f"The edit plan gives an invalid model: {problem}")
        return assignment

    def macs(self, plan: EditPlan) -> int:
        """Multiply-accumulates per example of the model ``plan`` gives, from shapes alone.

        Nothing is built or trained, so it is cheap enough to rank a batch of candidates by
        their likely evaluation time before they are sent out.
        """
        walked = self._walk(self._valid_assignment(plan))
        assert not isinstance(walked, str)  # a valid assignment walks through
        shapes, calls = walked
        live = self._live(self._valid_assignment(plan))
        total = 0
        for node, structural, ins in calls:
            if len(ins) != 1 or node.name not in live:
                continue  # merges (Add, Concatenate) have no MACs
            layer = (
                edited_layer(node, structural, ins[0][-1] if ins[0] else None)
                if structural
                else node.layer
            )
            if layer is not None:
                total += layer_macs(layer, ins[0], shapes[node.name])
        return total

    def weight_count(self, plan: EditPlan) -> int:
        """Weights of the model ``plan`` gives, counted from shapes alone (kernels and biases
        of the live convolutions and dense layers; BatchNorm folds into them in TFLite).

        A ranking of candidates by size before anything is built: the int8 file is about one
        byte per weight plus a fixed overhead."""
        return sum(self._layer_weights(plan).values())

    def weight_bytes(self, plan: EditPlan) -> float:
        """:meth:`weight_count` with each layer's weights at the bytes its precision edit
        stores them in (``WEIGHT_BYTES``: 1 for int8, 4 for float32, 0.5 for int4, ...): a
        size ranking in which keeping a layer in float32 is never a saving."""
        precisions = plan.precisions()
        return float(
            sum(
                count * WEIGHT_BYTES[precisions.get(name, "int8")]
                for name, count in self._layer_weights(plan).items()
            )
        )

    def disruption(self, plan: EditPlan) -> int:
        """How many of ``plan``'s edits give a layer a new function (a replacement, an
        activation, a new head): what fine-tuning must recover from. Pruning keeps each layer's
        strongest filters, removing a residual block keeps every other weight, and precisions
        are the allocator's, so those count 0."""
        return sum(edit.op not in ("scale", "remove", "precision") for edit in plan.edits)

    def _layer_weights(self, plan: EditPlan) -> dict[str, int]:
        assignment = self._valid_assignment(plan)
        walked = self._walk(assignment)
        assert not isinstance(walked, str)
        _, calls = walked
        live = self._live(assignment)
        counts: dict[str, int] = {}
        for node, structural, ins in calls:
            if len(ins) != 1 or node.name not in live or "remove" in structural:
                continue
            layer = (
                edited_layer(node, structural, ins[0][-1] if ins[0] else None)
                if structural
                else node.layer
            )
            if layer is not None:
                counts[node.name] = _weights(layer, ins[0])
        return counts

    def evaluation_cost(self, plan: EditPlan) -> float:
        """A relative estimate of how long evaluating ``plan``'s model takes, for ordering.

        MACs plus ``ELEMENTWISE_COST`` per activation element: on candidates this small the
        element-wise work (BatchNorm, activations, pooling, their gradients) weighs as much as
        the convolutions. Only the ranking matters, not the unit.
        """
        walked = self._walk(self._valid_assignment(plan))
        assert not isinstance(walked, str)
        shapes, calls = walked
        live = self._live(self._valid_assignment(plan))
        elements = sum(
            math.prod(d or 1 for d in shapes[n.name][1:]) for n, _, _ in calls if n.name in live
        )
        return float(self.macs(plan) + ELEMENTWISE_COST * elements)

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """A uniformly random valid decision vector (position by position)."""
        decisions: list[int] = []
        for _ in self.positions:
            valid = np.flatnonzero(self.mask(decisions))
            decisions.append(int(rng.choice(valid)))
        return tuple(decisions)

    def describe(self) -> pd.DataFrame:
        """One row per position: layer, aspect, the choices offered."""
        return pd.DataFrame(
            [(p.layer, p.aspect, ", ".join(p.labels())) for p in self.positions],
            columns=["layer", "aspect", "choices"],
        )

    def edits_for(self, layer: str) -> list[Edit]:
        """Every edit the space offers on ``layer`` (valid on the original model or not)."""
        return [c for p in self.positions if p.layer == layer for c in p.choices if c is not None]

    # -- internals ------------------------------------------------------------------------------
    def _assignment(self, prefix: Sequence[int]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for position, d in zip(self.positions, prefix):
            choice = position.choices[int(d)]
            if choice is not None:
                out.setdefault(position.layer, {})[choice.op] = choice.value
        return out

    def _problem(self, assignment: dict[str, dict[str, Any]]) -> str | None:
        """None if the edited model is shape-valid, else why not."""
        walked = self._walk(assignment)
        if isinstance(walked, str):
            return walked
        shapes = walked[0]
        for name in self.graph.outputs:
            if shapes[name] != self.graph.node(name).output_shape:
                return (
                    f"the model's output {name!r} would change shape from "
                    f"{self.graph.node(name).output_shape} to {shapes[name]}"
                )
        return None

    def _walk(
        self, assignment: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, Shape], list[tuple[Node, dict[str, Any], tuple[Shape, ...]]]] | str:
        """Every node's output shape and (node, structural edits, input shapes), or a problem."""
        shapes: dict[str, Shape] = {}
        calls = []
        assignment = expand_group_scales(assignment, self.groups)
        for node in self.graph.nodes:
            if node.is_input:
                shapes[node.name] = node.output_shape
                continue
            ins = tuple(shapes[i] for i in node.inputs)
            structural = {
                k: v for k, v in assignment.get(node.name, {}).items() if k != "precision"
            }
            if "remove" in structural and node.class_name in MERGE_TYPES:
                kept = self.shortcuts.get(node.name)
                if kept is None:
                    return f"{node.name!r} is not a residual join with a shortcut to keep"
                shapes[node.name] = shapes[kept]
                calls.append((node, structural, ins))
                continue
            key = (node.name, tuple(sorted(structural.items())), ins)
            out = self._cache.get(key)
            if out is None:
                out = self._cache[key] = _output_shape(node, structural, ins)
            if isinstance(out, str):
                return out
            shapes[node.name] = out
            calls.append((node, structural, ins))
        return shapes, calls

    def _live(self, assignment: dict[str, dict[str, Any]]) -> frozenset[str]:
        live: set[str] = set()
        stack = list(self.graph.outputs)
        while stack:
            name = stack.pop()
            if name in live:
                continue
            live.add(name)
            node = self.graph.node(name)
            removed = "remove" in assignment.get(name, {}) and node.class_name in MERGE_TYPES
            stack.extend([self.shortcuts[name]] if removed else node.inputs)
        return frozenset(live)

    def _check_layer_names(self) -> None:
        names = [n.name for n in self.graph.nodes if not n.is_input]
        for field_name in ("layers", "frozen_layers"):
            given = getattr(self.options, field_name) or ()
            unknown = [g for g in given if g not in names]
            if unknown:
                raise InvalidOptionError(
                    f"SpaceOptions.{field_name} names {unknown} not in model "
                    f"{self.model_name!r}; its layers: {', '.join(names)}."
                )

    def _editable(self, node: Node) -> bool:
        o = self.options
        if node.is_input or node.name in o.frozen_layers:
            return False
        return o.layers is None or node.name in o.layers

    def _positions(self) -> list[Position]:
        positions = []
        for node in self.graph.nodes:
            if not self._editable(node):
                continue
            for aspect in ASPECTS:
                choices = self._choices(node, aspect)
                if choices:
                    positions.append(Position(node.name, aspect, (None, *choices)))
        return positions

    def _choices(self, node: Node, aspect: str) -> list[Edit]:
        o, kind, name = self.options, node.class_name, node.name
        output = name in self.graph.outputs
        if aspect == "op":
            if kind in CONV_TYPES and not output:
                same = _same_replacement(node)
                ops = [Edit(name, "replace", r) for r in o.replacements if r != same]
                return ops + ([Edit(name, "remove")] if o.allow_remove else [])
            if kind in POOL_TYPES:
                other = "avgpool" if kind == "MaxPooling2D" else "maxpool"
                ops = [Edit(name, "replace", other)] if other in o.replacements else []
                return ops + ([Edit(name, "remove")] if o.allow_remove else [])
            if kind == "Dense" and not output and o.allow_remove:
                return [Edit(name, "remove")]
            if kind in MERGE_TYPES and name in self.shortcuts and o.allow_remove:
                return [Edit(name, "remove")]  # the residual block: the shortcut alone
            return []
        if aspect == "scale":
            group = self.groups.get(name, ())
            if (
                kind in WIDTH_TYPES
                and group[:1] == (name,)
                and scalable(self.graph, group)
                and all(self._editable(self.graph.node(m)) for m in group)
            ):
                return [Edit(name, "scale", s) for s in o.scales]
            return []
        if aspect == "activation":
            if output or not (kind in ACTIVATION_TYPES or kind in WEIGHTED_TYPES):
                return []
            current = current_activation(node)
            if current is None:
                return []
            return [Edit(name, "activation", a) for a in o.activations if a != current]
        if aspect == "head":
            return [Edit(name, "head", "gap")] if o.heads and self._is_head(node) else []
        if aspect == "precision":
            return (
                [Edit(name, "precision", p) for p in o.precisions if p != "int8"]
                if o.precision is not False and kind in WEIGHTED_TYPES
                else []
            )
        raise AssertionError(aspect)

    def _is_head(self, node: Node) -> bool:
        """A Flatten of a 4-D tensor whose output reaches a Dense through pass-through layers."""
        if node.class_name != "Flatten" or len(node.inputs) != 1:
            return False
        source = self.graph.node(node.inputs[0])
        if len(source.output_shape) != 4:
            return False
        current = node
        while True:
            consumers = self.graph.consumers(current.name)
            if len(consumers) != 1:
                return False
            current = consumers[0]
            if current.class_name == "Dense":
                return True
            if current.class_name not in _THROUGH:
                return False

    def _unknown_edit(self, edit: Edit) -> str:
        names = [n.name for n in self.graph.nodes if not n.is_input]
        if edit.layer not in names:
            return (
                f"Layer {edit.layer!r} is not in model {self.model_name!r}; its layers: "
                f"{', '.join(names)}."
            )
        offered = self.edits_for(edit.layer)
        kind = self.graph.node(edit.layer).class_name
        group = self.groups.get(edit.layer, ())
        if edit.op == "scale" and len(group) > 1:
            return (
                f"Layer {edit.layer!r} ({kind}) adds up with {', '.join(group)} at residual "
                f"joins, so they keep the same channels and scale together: "
                + (
                    f"scale {group[0]!r} instead."
                    if scalable(self.graph, group)
                    else "their width is fixed by a model input, output or concatenation."
                )
            )
        if not offered:
            why = (
                "it is frozen or outside SpaceOptions.layers"
                if not self._editable(self.graph.node(edit.layer))
                else "no edit applies to this layer type"
            )
            return f"Layer {edit.layer!r} ({kind}) cannot be edited: {why}."
        return (
            f"Layer {edit.layer!r} ({kind}) cannot take {edit.describe()!r}; it can take: "
            f"{'; '.join(e.describe() for e in offered)}."
        )


def _weights(layer: Any, in_shape: Shape) -> int:
    """Kernel and bias weights of ``layer`` on an input of ``in_shape``, from its config."""
    kind, config = type(layer).__name__, layer.get_config()
    channels = int(in_shape[-1] or 0)
    bias = bool(config.get("use_bias", False))
    if kind == "Dense":
        units = int(config["units"])
        return channels * units + units * bias
    if kind not in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
        return 0
    window = math.prod(int(k) for k in config["kernel_size"])
    if kind == "Conv2D":
        filters = int(config["filters"])
        groups = int(config.get("groups", 1) or 1)
        return window * channels // groups * filters + filters * bias
    multiplied = channels * int(config.get("depth_multiplier", 1))
    if kind == "DepthwiseConv2D":
        return window * multiplied + multiplied * bias
    filters = int(config["filters"])
    return window * multiplied + multiplied * filters + filters * bias


def _same_replacement(node: Node) -> str | None:
    """The replacement name that would rebuild ``node`` as it is (so it is not offered)."""
    config = node.layer.get_config()
    k = tuple(config.get("kernel_size", ()))
    if len(k) != 2 or k[0] != k[1]:
        return None
    dilated = tuple(config.get("dilation_rate", (1, 1))) != (1, 1)
    if node.class_name == "Conv2D":
        return "dilconv3" if dilated and k[0] == 3 else (None if dilated else f"conv{k[0]}")
    if node.class_name == "SeparableConv2D" and not dilated:
        return f"sepconv{k[0]}"
    return None


def _coherent(edits: dict[str, Any], *new: Edit) -> bool:
    """A removed or pooled layer takes nothing else; scale and activation need a layer."""
    for edit in new:
        op = edits.get("replace")
        gone = "remove" in edits or op in _NOT_A_LAYER
        if gone and edit.op in ("scale", "activation", "precision"):
            return False
        if edit.op == "remove" and any(k in edits for k in ("scale", "activation", "precision")):
            return False
    return True


def _output_shape(node: Node, edits: dict[str, Any], ins: tuple[Shape, ...]) -> Shape | str:
    original_ins = None  # the unedited layer on its original input shapes needs no rebuild
    if not edits:
        original_ins = ins
    try:
        if "remove" in edits:
            if len(ins) != 1:
                return f"{node.name!r} has several inputs and cannot be removed"
            out: Shape = ins[0]
        elif original_ins is not None and _same_inputs(node, ins):
            out = node.output_shape
        else:
            in_channels = ins[0][-1] if len(ins) == 1 and ins[0] else None
            layer = edited_layer(node, edits, in_channels)
            arg = ins[0] if len(ins) == 1 else list(ins)
            out = (
                tuple(layer.compute_output_shape(arg).as_list())
                if hasattr(layer.compute_output_shape(arg), "as_list")
                else tuple(layer.compute_output_shape(arg))
            )
    except Exception as exc:  # Keras raises ValueError, TypeError, ... for impossible shapes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{node.name!r} ({node.class_name}) cannot take its input {list(ins)}: {first[:200]}"
    if any(d is not None and d <= 0 for d in out[1:]):
        return f"{node.name!r} would output shape {out}: a dimension falls to zero"
    return tuple(None if d is None else int(d) for d in out)


def _same_inputs(node: Node, ins: tuple[Shape, ...]) -> bool:
    layer_in = node.layer.input_shape
    original = [tuple(layer_in)] if not isinstance(layer_in, list) else [tuple(s) for s in layer_in]
    return list(ins) == original
