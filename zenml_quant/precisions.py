"""The per-layer precisions a mixed-precision model can use, and what a file actually holds.

A precision is one way of running one Keras layer's TFLite operators. ai-edge-quantizer
(:mod:`zenml_quant.mixed_precision`) applies them; this module names them, orders them from
cheapest to most faithful (the allocator's repair moves a layer one step up that ladder), and
reads back from a finished ``.tflite`` which precision each operator really got: a recipe rule
that the quantizer does not support for an operator falls back silently, so the file, not the
recipe, is the truth every report shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InvalidOptionError

__all__ = [
    "DEFAULT_PRECISIONS",
    "OBJECTIVES",
    "PRECISIONS",
    "WEIGHTED_OPS",
    "Precision",
    "layer_precision",
    "op_precisions",
    "parse_precisions",
]


@dataclass(frozen=True)
class Precision:
    """One way to run a layer: its weight and activation bit widths and where it computes.

    ``weights_only`` precisions change only operators with weights (convolutions, dense
    layers); other operators of the layer stay int8. ``fidelity`` orders precisions from the
    most aggressive (0) to float (6).
    """

    name: str
    description: str
    fidelity: int
    weight_bits: int
    activation_bits: int  # 32: float activations
    integer_compute: bool
    weights_only: bool = False


#: Every precision, cheapest first. ``int4`` is w4a8 (int4 weights, int8 activations), the only
#: int4 form that computes in integers.
PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("int4", "int4 weights, int8 activations (w4a8)", 0, 4, 8, True, True),
        Precision("int4_weights", "int4 weights, float compute", 1, 4, 32, False, True),
        Precision("int8", "int8 weights and activations", 2, 8, 8, True),
        Precision("int8_weights", "int8 weights, float compute", 3, 8, 32, False, True),
        Precision("int16x8", "int8 weights, int16 activations", 4, 8, 16, True),
        Precision("float16_weights", "float16 weights, float compute", 5, 16, 32, False, True),
        Precision("float", "float32 weights and activations", 6, 32, 32, False),
    )
}

#: What ``--precisions`` allows when not given: 16x8 runs 8-16x slower than int8 on x86 and the
#: weight-only forms add dequantize operators, so they are used only when asked for.
DEFAULT_PRECISIONS: tuple[str, ...] = ("int4", "int8", "float")

_ALIASES = {
    "float32": "float",
    "fp32": "float",
    "w4a8": "int4",
    "w8a8": "int8",
    "16x8": "int16x8",
    "a16w8": "int16x8",
    "float16": "float16_weights",
    "fp16": "float16_weights",
}

#: TFLite operators whose weights the weight precisions act on.
WEIGHTED_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "TRANSPOSE_CONV",
        "EMBEDDING_LOOKUP",
        "CONV_3D",
    }
)


def parse_precisions(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"int4,int8,float"`` (or a list) as checked precision names, cheapest first.

    Aliases: ``w4a8`` = ``int4``, ``float32`` = ``float``, ``16x8`` = ``int16x8``,
    ``float16`` = ``float16_weights``. ``None`` gives :data:`DEFAULT_PRECISIONS`.

    Raises:
        InvalidOptionError: an unknown name, or none at all.
    """
    if value is None:
        return DEFAULT_PRECISIONS
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [_ALIASES.get(str(v).strip().lower(), str(v).strip().lower()) for v in items]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown or not names:
        raise InvalidOptionError(
            f"Unknown precision {', '.join(map(repr, unknown)) or '(none given)'}: use a "
            f"comma-separated list of {', '.join(PRECISIONS)} (e.g. 'int4,int8,float')."
        )
    return tuple(sorted(set(names), key=lambda n: PRECISIONS[n].fidelity))


# --- what a file holds -------------------------------------------------------------------------

_FLOATS = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"}


def _observed(op_name: str, weight: str | None, dequantized: bool, output: str) -> str:
    """The precision of one operator from its weight's stored type and its output's type."""
    if output in _FLOATS:  # float compute: weight-only forms keep their weights small
        if weight is None or not dequantized or weight in _FLOATS - {"FLOAT16"}:
            return "float"
        return {"INT4": "int4_weights", "INT8": "int8_weights", "FLOAT16": "float16_weights"}.get(
            weight, f"{weight.lower()}_weights"
        )
    if output == "INT16":
        return "int16x8"
    if output == "INT8":
        return "int4" if weight == "INT4" else "int8"
    return output.lower()


def op_precisions(content: bytes) -> dict[str, str]:
    """The precision of every operator of a ``.tflite``, by its first output tensor's name.

    Operators with weights (:data:`WEIGHTED_OPS`) are judged by their weight's stored type
    (followed through a ``DEQUANTIZE`` for the weight-only forms) and their output's type;
    others by their output's type (int8, int16x8 or float). Quantize and dequantize operators
    are left out: they belong to the boundary between precisions, not to a layer.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    type_name = {
        v: k for k, v in vars(flatbuffer_utils.schema_fb.TensorType).items() if k.isupper()
    }
    codes = [flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))]
    producer = {int(t): op for op in graph.operators for t in op.outputs}
    result: dict[str, str] = {}
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        if code in ("QUANTIZE", "DEQUANTIZE") or not len(op.outputs):
            continue
        out = graph.tensors[int(op.outputs[0])]
        weight, dequantized = None, False
        if code in WEIGHTED_OPS and len(op.inputs) > 1 and int(op.inputs[1]) >= 0:
            index = int(op.inputs[1])
            source = producer.get(index)
            if source is not None and codes[source.opcodeIndex] == "DEQUANTIZE":
                index, dequantized = int(source.inputs[0]), True
            weight = type_name.get(graph.tensors[index].type, "?")
        name = out.name.decode() if isinstance(out.name, bytes) else str(out.name)
        result[name] = _observed(code, weight, dequantized, type_name.get(out.type, "?"))
    return result


def layer_precision(observed: Sequence[str]) -> str:
    """One name for the precisions ``observed`` on a layer's operators (pass its weighted
    operators' when it has any: the weight precisions act only on those): the precision when
    they agree, else every one joined by ``+``, cheapest first, so a float operator among int8
    ones is never hidden (``int8+float``)."""
    kinds = list(dict.fromkeys(observed))
    if not kinds:
        return "none"
    return "+".join(sorted(kinds, key=lambda k: PRECISIONS[k].fidelity if k in PRECISIONS else 9))


#: What the allocator minimises (the file's bytes, the measured latency, the energy estimate or
#: the peak activation memory) and the profile column that predicts it move by move. The peak
#: is a maximum over the inference, not a sum of moves: it gets constraints of its own.
OBJECTIVES: dict[str, str | None] = {
    "bytes": "bytes_delta",
    "latency": "latency_delta_ms",
    "energy": "energy_delta_uj",
    "peak_memory": None,
}
