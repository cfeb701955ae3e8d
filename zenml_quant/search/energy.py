"""An energy estimate per inference from a per-operation cost table.

The estimate follows AutoQKeras' ``qtools`` idea: count what a layer does (multiply-accumulates,
weight reads, activation reads and writes), multiply each count by its bit width and by the
energy one such operation costs on a reference chip, and add it up. It is a model, not a
measurement: the absolute figures are for a 45 nm process, but the ratios (int8 against float32,
a smaller layer against a larger one) are what a search compares, and those carry over.

Default costs (:class:`EnergyTable`) are Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, at 45 nm and 0.9 V:

=============================  ==========================  ==============================
operation                      Horowitz                    per unit used here
=============================  ==========================  ==============================
8-bit integer add / multiply   0.03 pJ / 0.2 pJ            0.23 pJ per int8 MAC
32-bit float add / multiply    0.9 pJ / 3.7 pJ             4.6 pJ per float32 MAC
SRAM, 8 KB array               10 pJ per 64-bit access     0.156 pJ per activation bit
SRAM, 32 KB array              20 pJ per 64-bit access     0.3125 pJ per weight bit
DRAM                           1.3-2.6 nJ per 64 bits      (not used by default)
=============================  ==========================  ==============================

The memory model, per inference at batch 1:

- **Compute**: every MAC of :func:`zenml_quant.profile.layer_table` costs one multiply and one
  add at the layer's width (8 bits for an int8 layer, 32 for a float one).
- **Weights**: every weight bit is read once from on-chip SRAM (once per call for a shared
  layer). Weights outgrow a small scratch array, so they are charged at the 32 KB array's
  20 pJ per 64 bits. An int8 layer stores 8-bit weights and 32-bit biases (as TFLite does); a
  float layer 32-bit weights and biases.
- **Activations**: every layer reads each of its inputs once and writes its output once, at its
  own width, in an 8 KB-class scratch SRAM (10 pJ per 64 bits). Layers without MACs (pooling,
  activations, Add, Concatenate) cost only this traffic.
- **Free layers**: BatchNormalization (the converter folds it into the preceding conv or dense
  layer), Dropout and noise layers (removed at inference), Flatten and Reshape (TFLite runs
  them in place, no data moves) cost nothing.

Not modelled: quantize/dequantize ops around a float layer in an int8 model, the int32
accumulator (charged as an 8-bit add), caches and data reuse inside a convolution, leakage and
the host CPU's overhead. For a device that streams its weights from DRAM, pass a table with
``weight_pj_per_bit`` near ``1300 / 64`` (about 20 pJ per bit): weights then dominate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from .._compat import MODEL_TYPES
from .._validate import as_finite
from ..errors import InvalidModelError, InvalidOptionError
from ..profile import _graph_nodes, _mro_names, _shape, _unwrap, layer_table

__all__ = ["ENERGY_COLUMNS", "EnergyEstimate", "EnergyTable", "estimate_energy", "layer_traffic"]

#: Columns of :attr:`EnergyEstimate.per_layer`.
ENERGY_COLUMNS: tuple[str, ...] = (
    "layer",
    "type",
    "bits",
    "macs",
    "compute_uj",
    "weight_uj",
    "activation_uj",
    "total_uj",
)

# Layers that move no data and compute nothing in the converted TFLite model (matched against
# the class names in the layer's MRO, so subclasses such as SpatialDropout2D count too).
_FREE = frozenset(
    {
        "BatchNormalization",
        "BatchNormalizationBase",
        "Dropout",
        "AlphaDropout",
        "GaussianDropout",
        "GaussianNoise",
        "ActivityRegularization",
        "Flatten",
        "Reshape",
    }
)
_PJ_TO_UJ = 1e-6


@dataclass(frozen=True)
class EnergyTable:
    """Energy of one operation, in picojoules (defaults: Horowitz, ISSCC 2014, 45 nm).

    - ``int8_mult_pj``, ``int8_add_pj``: one 8-bit integer multiply / add (0.2 / 0.03 pJ).
    - ``float32_mult_pj``, ``float32_add_pj``: one 32-bit float multiply / add (3.7 / 0.9 pJ).
    - ``weight_pj_per_bit``: reading one weight bit, 32 KB SRAM at 20 pJ per 64 bits.
    - ``activation_pj_per_bit``: reading or writing one activation bit, 8 KB SRAM at 10 pJ per
      64 bits.
    """

    int8_mult_pj: float = 0.2
    int8_add_pj: float = 0.03
    float32_mult_pj: float = 3.7
    float32_add_pj: float = 0.9
    weight_pj_per_bit: float = 20 / 64
    activation_pj_per_bit: float = 10 / 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if as_finite(value) is None or value < 0:
                raise InvalidOptionError(
                    f"EnergyTable.{f.name} is an energy in picojoules (a finite number >= 0), "
                    f"got {value!r}."
                )

    def mac_pj(self, bits: int) -> float:
        """One multiply-accumulate (a multiply and an add) at ``bits`` (8 or 32)."""
        if bits == 8:
            return self.int8_mult_pj + self.int8_add_pj
        if bits == 32:
            return self.float32_mult_pj + self.float32_add_pj
        raise InvalidOptionError(f"The energy table knows 8-bit and 32-bit MACs, not {bits!r}.")


@dataclass(frozen=True)
class EnergyEstimate:
    """Estimated energy of one batch-1 inference, in microjoules, in total and per layer.

    ``per_layer`` has one row per :func:`zenml_quant.profile.layer_table` row, with the columns
    of :data:`ENERGY_COLUMNS`: the layer's ``bits`` (8 or 32), its ``macs``, and its
    ``compute_uj``, ``weight_uj``, ``activation_uj`` and their sum ``total_uj``.
    """

    total_uj: float
    per_layer: pd.DataFrame = field(compare=False, repr=False)

    @property
    def compute_uj(self) -> float:
        return float(self.per_layer["compute_uj"].sum())

    @property
    def weight_uj(self) -> float:
        return float(self.per_layer["weight_uj"].sum())

    @property
    def activation_uj(self) -> float:
        return float(self.per_layer["activation_uj"].sum())


def _elements(shape: tuple[int | None, ...], layer: str) -> int:
    dims = [d for d in shape[1:] if d is not None]  # batch axis: one example
    if len(dims) < len(shape[1:]):
        raise InvalidModelError(
            f"Layer {layer!r} has an activation of unknown size {shape}: give the model a fixed "
            "input shape to estimate its energy."
        )
    return int(math.prod(dims))


def layer_traffic(model: Any, prefix: str, calls_of_model: int) -> dict[str, tuple[int, int, bool]]:
    """``{layer name: (activation elements read + written, calls, free)}`` per inference, with
    the names of layer_table (a shared layer, or one inside a shared nested model, runs once
    per call, and every call is a separate op in the converted graph)."""
    calls: dict[int, list[tuple[list[Any], list[Any]]]] = {}
    for layer, ins, outs in _graph_nodes(model):
        calls.setdefault(id(layer), []).append((ins, outs))
    out: dict[str, tuple[int, int, bool]] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        own = calls.get(id(layer), [])
        if isinstance(layer, MODEL_TYPES) and hasattr(layer, "layers"):
            out.update(
                layer_traffic(layer, f"{prefix}{layer.name}/", calls_of_model * max(len(own), 1))
            )
            continue
        name = prefix + layer.name
        free = bool(_mro_names(_unwrap(layer)) & _FREE)
        elements = 0
        if not free:
            for ins, outs in own:
                tensors = list(ins) + list(outs)
                elements += sum(_elements(_shape(t), name) for t in tensors)
        out[name] = (elements * calls_of_model, len(own) * calls_of_model, free)
    return out


def estimate_energy(
    model: Any,
    *,
    float_layers: Sequence[str] = (),
    quantized: bool = True,
    table: EnergyTable = EnergyTable(),
) -> EnergyEstimate:
    """Estimate the energy of one batch-1 inference of ``model`` (see the module docstring).

    Args:
        model: a ``tf_keras`` or Keras 3 Sequential/Functional model with a fixed input shape.
        float_layers: layers kept in float32 in an otherwise int8 model, by their
            :func:`~zenml_quant.profile.layer_table` names (``outer/inner`` inside a nested
            model).
        quantized: True for an int8 model (every layer but ``float_layers`` at 8 bits), False for
            a float32 one (every layer at 32 bits).
        table: the per-operation energies, in picojoules.

    Raises:
        InvalidModelError: the model cannot be profiled (no layer graph, unknown dimensions).
        InvalidOptionError: ``float_layers`` names a layer the model does not have, or an
            argument has the wrong type.
    """
    if not isinstance(table, EnergyTable):
        raise InvalidOptionError(f"table must be an EnergyTable, got {type(table).__name__}.")
    if not isinstance(quantized, bool):
        raise InvalidOptionError(f"quantized must be True or False, got {quantized!r}.")
    if isinstance(float_layers, str) or not all(isinstance(n, str) for n in float_layers):
        raise InvalidOptionError(
            f"float_layers is a list of layer names, e.g. ['dense_1'], got {float_layers!r}."
        )
    layers = layer_table(model)  # validates the model
    traffic = layer_traffic(model, "", 1)
    names = list(layers["layer"])
    unknown = [n for n in float_layers if n not in traffic]
    if unknown:
        raise InvalidOptionError(
            f"float_layers names {', '.join(map(repr, unknown))}, not a layer of model "
            f"{model.name!r}; its layers are: {', '.join(names)}."
        )
    floats = set(float_layers)
    rows = []
    for row in layers.itertuples(index=False):
        bits = 8 if quantized and row.layer not in floats else 32
        elements, calls, free = traffic[row.layer]
        macs = int(row.macs)
        compute = macs * table.mac_pj(bits)
        if free:
            weight = 0.0
        else:
            weight_bytes = row.weight_bytes_int8 if bits == 8 else row.weight_bytes_float32
            weight = 8 * int(weight_bytes) * calls * table.weight_pj_per_bit
        activation = elements * bits * table.activation_pj_per_bit
        values = [compute, weight, activation, compute + weight + activation]
        rows.append([row.layer, row.type, bits, macs, *(v * _PJ_TO_UJ for v in values)])
    frame = pd.DataFrame(rows, columns=list(ENERGY_COLUMNS))
    frame = frame.astype({"bits": "int64", "macs": "int64"})
    floats_cols = ["compute_uj", "weight_uj", "activation_uj", "total_uj"]
    frame[floats_cols] = frame[floats_cols].astype("float64")
    return EnergyEstimate(total_uj=float(frame["total_uj"].sum()), per_layer=frame)
