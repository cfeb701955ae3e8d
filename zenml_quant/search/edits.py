"""The edit format: a plan of layer edits against an original model, shared by the search,
``apply_edits`` and the studio, and written to YAML for people and pipelines.

One :class:`Edit` names a layer of the original model (by its Keras name), an operation and a
value. The operations:

- ``replace``: the layer becomes another operator, one of :data:`REPLACEMENTS` (e.g.
  ``sepconv3``, ``maxpool``); a pooling layer can swap ``maxpool``/``avgpool``.
- ``remove``: the layer becomes the identity (``value`` is None); a removed residual join
  (``Add``) passes its shortcut on, which removes the block.
- ``scale``: multiply a convolution's filters or a Dense layer's units (0.25 to 1.5); layers
  whose outputs add up at residual joins scale together, through the group's first layer.
- ``activation``: one of :data:`ACTIVATIONS`.
- ``head``: ``gap`` turns a Flatten feeding a Dense into global average pooling.
- ``precision``: ``float32`` keeps the layer in float in an otherwise int8 model (``int8`` is
  the default and never written).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import InvalidOptionError

__all__ = [
    "ACTIVATIONS",
    "OPERATIONS",
    "PLAN_FORMAT",
    "EDIT_PRECISIONS",
    "REPLACEMENTS",
    "Edit",
    "EditPlan",
]

#: Written into every YAML plan so a reader knows what it holds.
PLAN_FORMAT = "zenml-quant/edit-plan/v1"
OPERATIONS = ("replace", "remove", "scale", "activation", "head", "precision")
#: Replacement operators: convolutions by kernel size, a dilated 3x3 (dilation 2), depthwise-
#: separable convolutions, and pooling over the convolution's window.
REPLACEMENTS = ("conv1", "conv3", "conv5", "dilconv3", "sepconv3", "sepconv5", "avgpool", "maxpool")
ACTIVATIONS = ("relu", "relu6", "hard_swish", "tanh")
#: A layer's precision in the converted model: ``int8`` (the default), ``float32``, or any other
#: per-layer precision of :mod:`zenml_quant.precisions` (built through ai-edge-quantizer).
EDIT_PRECISIONS = (
    "int8",
    "float32",
    "int4",
    "int4_weights",
    "int8_weights",
    "int16x8",
    "float16_weights",
)
HEADS = ("gap",)
SCALES = (0.25, 0.5, 0.75, 1.25, 1.5)

_VALUES: dict[str, tuple[Any, ...]] = {
    "replace": REPLACEMENTS,
    "activation": ACTIVATIONS,
    "head": HEADS,
    "precision": EDIT_PRECISIONS,
}
_VERBS = {
    "replace": "replace {layer} by {value}",
    "remove": "remove {layer}",
    "scale": "scale {layer}'s filters/units by {value:g}",
    "activation": "set {layer}'s activation to {value}",
    "head": "replace Flatten {layer} + Dense by global average pooling",
    "precision": "keep {layer} in {value}",
}


@dataclass(frozen=True)
class Edit:
    """One change to one layer of the original model."""

    layer: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise InvalidOptionError(
                f"An edit names a layer by its Keras name, got {self.layer!r}."
            )
        if self.op not in OPERATIONS:
            raise InvalidOptionError(
                f"Unknown edit operation {self.op!r} on layer {self.layer!r}: use one of "
                f"{', '.join(OPERATIONS)}."
            )
        if self.op == "remove":
            if self.value is not None:
                raise InvalidOptionError(f"'remove' takes no value (layer {self.layer!r}).")
        elif self.op == "scale":
            value = self.value
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0 < value <= 4)
            ):
                raise InvalidOptionError(
                    f"'scale' on layer {self.layer!r} needs a factor such as 0.5 (0 < factor <= 4),"
                    f" got {value!r}."
                )
            object.__setattr__(self, "value", float(value))
        elif self.value not in _VALUES[self.op]:
            raise InvalidOptionError(
                f"{self.op!r} on layer {self.layer!r} takes one of "
                f"{', '.join(map(str, _VALUES[self.op]))}, got {self.value!r}."
            )

    def describe(self) -> str:
        """A readable sentence, e.g. ``replace conv2 by sepconv3``."""
        return _VERBS[self.op].format(layer=self.layer, value=self.value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "op": self.op}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class EditPlan:
    """An ordered set of edits against the model named ``model`` (one edit per layer and op)."""

    edits: tuple[Edit, ...] = ()
    model: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        edits = tuple(self.edits)
        seen: set[tuple[str, str]] = set()
        for edit in edits:
            if not isinstance(edit, Edit):
                raise InvalidOptionError(f"An EditPlan holds Edit objects, got {edit!r}.")
            key = (edit.layer, edit.op)
            if key in seen:
                raise InvalidOptionError(
                    f"Layer {edit.layer!r} has two {edit.op!r} edits; keep one."
                )
            seen.add(key)
        object.__setattr__(self, "edits", edits)

    def __len__(self) -> int:
        return len(self.edits)

    def for_layer(self, layer: str) -> dict[str, Any]:
        """``{op: value}`` of the edits on ``layer``."""
        return {e.op: e.value for e in self.edits if e.layer == layer}

    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.layer for e in self.edits))

    def float_layers(self) -> tuple[str, ...]:
        """Layers the plan keeps in float32 in the int8 model."""
        return tuple(e.layer for e in self.edits if e.op == "precision" and e.value == "float32")

    def precisions(self) -> dict[str, str]:
        """``{layer: precision}`` of the plan's precision edits other than int8."""
        return {
            e.layer: str(e.value) for e in self.edits if e.op == "precision" and e.value != "int8"
        }

    def describe(self) -> list[str]:
        """One readable line per edit; ``["original model"]`` for an empty plan."""
        return [e.describe() for e in self.edits] or ["original model"]

    def key(self) -> tuple[tuple[str, str, Any], ...]:
        """A hashable, order-independent identity of the plan."""
        return tuple(sorted((e.layer, e.op, e.value) for e in self.edits))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": PLAN_FORMAT, "model": self.model}
        if self.meta:
            out["meta"] = dict(self.meta)
        out["edits"] = [e.to_dict() for e in self.edits]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_edits(cls, edits: Iterable[Edit | Mapping[str, Any]], model: str = "") -> EditPlan:
        return cls(tuple(e if isinstance(e, Edit) else _edit(e) for e in edits), model=model)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EditPlan:
        if not isinstance(data, Mapping):
            raise InvalidOptionError(
                f"An edit plan is a mapping with an 'edits' list, got {type(data).__name__}."
            )
        fmt = data.get("format", PLAN_FORMAT)
        if fmt != PLAN_FORMAT:
            raise InvalidOptionError(
                f"Unknown edit plan format {fmt!r}; this version reads {PLAN_FORMAT!r}."
            )
        edits = data.get("edits", [])
        if not isinstance(edits, list):
            raise InvalidOptionError("An edit plan's 'edits' must be a list of {layer, op, value}.")
        meta = data.get("meta") or {}
        plan = cls.from_edits(edits, model=str(data.get("model") or ""))
        return cls(plan.edits, model=plan.model, meta=dict(meta))

    @classmethod
    def from_yaml(cls, text: str) -> EditPlan:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidOptionError(f"The edit plan is not valid YAML: {exc}") from None
        return cls.from_dict(data if data is not None else {})


def _edit(data: Mapping[str, Any]) -> Edit:
    if not isinstance(data, Mapping) or "layer" not in data or "op" not in data:
        raise InvalidOptionError(
            f"Each edit is a mapping with 'layer', 'op' and (except for remove) 'value', got "
            f"{data!r}."
        )
    unknown = set(data) - {"layer", "op", "value"}
    if unknown:
        raise InvalidOptionError(f"Unknown key(s) {sorted(unknown)} in edit {dict(data)!r}.")
    return Edit(str(data["layer"]), str(data["op"]), data.get("value"))
