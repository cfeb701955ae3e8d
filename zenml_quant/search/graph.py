"""The layer graph of a Keras model, as the search edits it: one node per layer, in
topological order, with the names of the layers it reads from.

Sequential models are read through a Functional view of the same layers, so both kinds give the
same graph. The search edits layers that are called once on plain Keras tensors; a shared layer
or a layer fed extra tensors through call arguments (``TFOpLambda`` from ``tf.*`` calls in a
Functional model) is refused with the reason, because re-wiring it cannot be done faithfully.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._compat import is_keras3_model, tf_keras
from ..errors import InvalidModelError

__all__ = ["ModelGraph", "Node", "model_graph"]

Shape = tuple[int | None, ...]


@dataclass(frozen=True, eq=False)
class Node:
    """One layer: its name, Keras class, the live layer, inbound layer names and output shape."""

    name: str
    class_name: str
    layer: Any = field(repr=False)
    inputs: tuple[str, ...]
    output_shape: Shape

    @property
    def is_input(self) -> bool:
        return self.class_name == "InputLayer"


@dataclass(frozen=True, eq=False)
class ModelGraph:
    """The nodes in topological order, the model's input and output layer names."""

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]


def model_graph(model: Any) -> ModelGraph:
    """Read ``model`` (a built ``tf_keras`` Sequential or Functional model) into a graph.

    Raises:
        InvalidModelError: a Keras 3 or subclassed model, an unbuilt Sequential, a shared layer
            or a layer called with extra tensor arguments.
    """
    if is_keras3_model(model):
        raise InvalidModelError(
            f"Model {getattr(model, 'name', '?')!r} is a Keras 3 model; the architecture search "
            "fine-tunes candidates with tf_keras. Rebuild or save it with tf_keras (the "
            "package's loader returns tf_keras models for files written by tf_keras)."
        )
    if not isinstance(model, tf_keras.Model) or type(model).__name__ not in (
        "Sequential",
        "Functional",
        "Model",
    ):
        raise InvalidModelError(
            f"The architecture search needs a tf_keras Sequential or Functional model, got "
            f"{type(model).__name__}; subclassed models have no layer graph to edit."
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        inputs = outputs = None
    if not inputs or not outputs:
        raise InvalidModelError(
            f"Model {model.name!r} has no inputs yet: build it with an Input layer or "
            "`model.build(input_shape)` before searching."
        )
    functional = model if type(model).__name__ != "Sequential" else tf_keras.Model(inputs, outputs)
    config = functional.get_config()
    layers = {layer.name: layer for layer in functional.layers}
    nodes: list[Node] = []
    for entry in config["layers"]:
        name = entry["name"]
        calls = entry.get("inbound_nodes") or []
        if len(calls) > 1:
            raise InvalidModelError(
                f"Layer {name!r} is called {len(calls)} times (a shared layer); the search edits "
                "layers used once. Give each use its own layer, or leave this model's search "
                "to the layers around it with SpaceOptions(frozen_layers=...)."
            )
        inbound = []
        for item in calls[0] if calls else []:
            source, _, tensor_index, kwargs = (list(item) + [0, 0, {}])[:4]
            if tensor_index != 0 or _has_tensor_kwargs(kwargs):
                raise InvalidModelError(
                    f"Layer {name!r} ({entry['class_name']}) takes extra tensor arguments or a "
                    "second output of another layer; the search can only re-wire plain layer "
                    "calls. Replace tf.* calls in the model with Keras layers (e.g. Add)."
                )
            inbound.append(str(source))
        layer = layers[name]
        shape = layer.output_shape
        if isinstance(shape, list):  # an InputLayer reports [shape]
            shape = shape[0] if len(shape) == 1 else None
        if shape is None:
            raise InvalidModelError(
                f"Layer {name!r} has several outputs; the search edits single-output layers."
            )
        nodes.append(Node(name, entry["class_name"], layer, tuple(inbound), tuple(shape)))
    return ModelGraph(
        name=model.name,
        nodes=tuple(_topological(nodes)),
        inputs=tuple(str(i[0]) for i in config["input_layers"]),
        outputs=tuple(str(o[0]) for o in config["output_layers"]),
    )


def _has_tensor_kwargs(kwargs: Any) -> bool:
    return bool(kwargs) and any(isinstance(v, (list, dict)) for v in dict(kwargs).values())


def _topological(nodes: list[Node]) -> list[Node]:
    done: set[str] = set()
    ordered: list[Node] = []
    pending = list(nodes)
    while pending:
        ready = [n for n in pending if all(i in done for i in n.inputs)]
        if not ready:  # pragma: no cover - a Keras graph is acyclic
            raise InvalidModelError("The model's layer graph has a cycle.")
        for n in ready:
            done.add(n.name)
            ordered.append(n)
        pending = [n for n in pending if n.name not in done]
    return ordered
