"""Build the edited model: apply an :class:`EditPlan` to the original and carry its weights over.

Unchanged layers keep their pre-trained weights exactly; a scaled or resized layer inherits the
corresponding part of them (see :mod:`.inherit`); a layer with no correspondence starts from its
initialiser, seeded so that the same plan and seed give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._compat import tf_keras
from ..errors import InvalidModelError
from .edits import EditPlan
from .graph import model_graph
from .inherit import inherit_weights
from .operators import edited_layer
from .space import SearchSpace, SpaceOptions

__all__ = ["EditedModel", "apply_edits"]


@dataclass(frozen=True, eq=False)
class EditedModel:
    """The rebuilt model and which weighted layers got the original weights whole
    (``transferred``), in part (``inherited``: kept filters, rows or a re-centred kernel) or not
    at all (``initialised``)."""

    model: Any
    plan: EditPlan
    transferred: tuple[str, ...]
    initialised: tuple[str, ...]
    inherited: tuple[str, ...] = ()


def apply_edits(
    model: Any,
    plan: EditPlan,
    *,
    seed: int = 0,
    space: SearchSpace | None = None,
) -> EditedModel:
    """Apply ``plan`` to ``model`` (tf_keras Sequential or Functional) and transfer weights.

    The plan is validated first against the model's search space (the default
    :class:`SpaceOptions` unless ``space`` is given): an unknown layer, an edit the layer cannot
    take, or a combination that does not build raises :class:`InvalidOptionError` naming it.
    The result is always a Functional model with the original layer names; ``precision`` edits
    do not change the Keras model (they choose float layers at conversion).
    """
    space = space or SearchSpace(model, SpaceOptions())
    space.decisions(plan)  # validates, with the reason on failure
    structural = space.structural_edits(plan)
    graph = space.graph if space.graph.name == model.name else model_graph(model)
    tf_keras.utils.set_random_seed(seed)
    tensors: dict[str, Any] = {}
    inputs = []
    for node in graph.nodes:
        if node.is_input:
            config = node.layer.get_config()
            tensor = tf_keras.Input(
                batch_shape=config["batch_input_shape"],
                dtype=config.get("dtype"),
                name=node.name,
            )
            tensors[node.name] = tensor
            inputs.append(tensor)
            continue
        ins = [tensors[i] for i in node.inputs]
        edits = structural.get(node.name, {})
        if "remove" in edits and node.name in space.shortcuts:  # the residual block goes
            tensors[node.name] = tensors[space.shortcuts[node.name]]
            continue
        in_channels = ins[0].shape[-1] if len(ins) == 1 else None
        layer = edited_layer(node, edits, in_channels)
        if layer is None:  # removed: the identity
            tensors[node.name] = ins[0]
            continue
        tensors[node.name] = layer(ins[0] if len(ins) == 1 else ins)
    by_name = {i.name.split(":")[0]: i for i in inputs}
    edited = tf_keras.Model(
        [by_name.get(n, tensors[n]) for n in graph.inputs] if len(graph.inputs) > 1 else inputs[0],
        [tensors[n] for n in graph.outputs]
        if len(graph.outputs) > 1
        else tensors[graph.outputs[0]],
        name=model.name,
    )
    if not edited.weights:
        raise InvalidModelError(f"Model {model.name!r} has no weights to transfer.")
    done = inherit_weights(model, edited, graph)
    return EditedModel(edited, plan, done.transferred, done.initialised, done.inherited)
