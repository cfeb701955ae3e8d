"""What each precision costs and saves on each layer: the table the allocator optimises over.

For every quantizable layer and every allowed precision, two files are built, in milliseconds
each, from one calibration:

- the float model with only that layer at the precision: its quality against the float file
  is the layer's ``change`` (the metric's :meth:`Metric.worse_by`, so larger is worse). This is
  HAWQ's one-layer-at-a-time view: measured against all-int8 instead, a pair of layers that
  only works in float together (both ends of an outlier tensor) shows no gain for either;
- the all-int8 model with only that layer moved: its size and latency against all-int8 are
  the layer's ``bytes_delta`` (exact, including quantize/dequantize operators) and
  ``latency_delta_ms`` (median batch-1 latency, one thread, measured side by side);
  ``latency_share`` is that over the int8 latency;

plus ``energy_delta_uj``, the change of the per-inference energy estimate
(:func:`layer_energy_uj`, AutoQKeras' qtools idea with Horowitz's 45 nm costs), and ``macs``.

A move the quantizer cannot apply (a precision it does not support for that operator) leaves
the file unchanged, and one whose file cannot load is no choice either: such rows are kept with
``applied=False`` and never offered to the allocator.

``mode="fast"`` scores each move on a seeded subset of at most ``fast_samples`` examples;
``"exhaustive"`` on the whole split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidOptionError
from .evaluate import keras_outputs
from .interpreter import measure_latency, run_tflite
from .mixed_precision import PrecisionQuantizer
from .precisions import PRECISIONS, parse_precisions
from .profile import layer_table
from .search.energy import EnergyTable, layer_traffic
from .tasks import dataset_metric
from .types import ConversionOptions, LabeledDataset, TFLiteModel

__all__ = [
    "PRECISION_PROFILE_COLUMNS",
    "PROFILE_MODES",
    "PrecisionProfile",
    "layer_energy_uj",
    "profile_precisions",
]

logger = logging.getLogger(__name__)

PROFILE_MODES = ("fast", "exhaustive")

PRECISION_PROFILE_COLUMNS: tuple[str, ...] = (
    "layer",
    "type",
    "precision",
    "applied",
    "quality",
    "change",
    "bytes_delta",
    "latency_delta_ms",
    "latency_share",
    "energy_delta_uj",
    "macs",
)


@dataclass(frozen=True, eq=False)
class PrecisionProfile:
    """The per-(layer, precision) table and the all-int8 reference it was measured against.

    ``table`` has the columns of :data:`PRECISION_PROFILE_COLUMNS`; with ``float`` among the
    precisions every layer has a ``float`` row of quality changes 0. ``quality`` and ``change``
    are in the dataset's metric, against ``float_tflite_quality`` (the float file);
    ``int8_quality`` (all-int8) and ``float_quality`` (the Keras model) are on the same
    examples.
    """

    table: pd.DataFrame
    mode: str
    split: str
    n_samples: int
    metric: str
    float_quality: float
    float_tflite_quality: float
    int8_quality: float
    int8_bytes: int
    int8_latency_ms: float
    precisions: tuple[str, ...]
    evaluations: int
    seconds: float
    #: :meth:`PrecisionQuantizer.live_elements`, for the peak-memory objective.
    live_elements: tuple[tuple[tuple[str, int], ...], ...] = ()

    def options_for(self, layer: str) -> pd.DataFrame:
        """The rows of ``layer`` that can be chosen (the moves that applied)."""
        rows = self.table[(self.table["layer"] == layer) & self.table["applied"]]
        return rows.reset_index(drop=True)


def layer_energy_uj(
    macs: int,
    weights: int,
    activation_elements: int,
    precision: str,
    table: EnergyTable | None = None,
) -> float:
    """Estimated energy (µJ) of one call of a layer at ``precision``.

    Integer-compute precisions multiply at their activation width (int4 weights are widened to
    int8 by the kernel), with a multiply costing the square and an add the ratio of the width
    to 8 bits against Horowitz's int8 figures; float-compute ones pay float32 MACs. Weights are
    read once at their stored width, activations read and written at their width.
    """
    p = PRECISIONS[precision]
    table = table or EnergyTable()
    if p.integer_compute:
        scale = p.activation_bits / 8
        mac = table.int8_mult_pj * scale**2 + table.int8_add_pj * scale
    else:
        mac = table.mac_pj(32)
    compute = macs * mac
    weight = weights * p.weight_bits * table.weight_pj_per_bit
    activation = activation_elements * p.activation_bits * table.activation_pj_per_bit
    return (compute + weight + activation) * 1e-6


def profile_precisions(
    model: Any,
    dataset: LabeledDataset,
    *,
    precisions: str | Sequence[str] | None = None,
    mode: str = "fast",
    split: str = "validation",
    fast_samples: int = 1000,
    latency_runs: int = 50,
    options: ConversionOptions | None = None,
    quantizer: PrecisionQuantizer | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PrecisionProfile:
    """Measure every allowed precision on every quantizable layer of ``model`` (see module doc).

    Args:
        model: the float Keras model.
        dataset: train features calibrate; ``split`` scores.
        precisions: the precisions to measure (``"int4,int8,float"`` by default; ``int8`` is
            always measured: it is the reference of every size and latency).
        mode: ``"fast"`` (a subset of ``fast_samples`` examples) or ``"exhaustive"``.
        latency_runs: timed invokes per file (0 skips latency).
        quantizer: a calibrated :class:`PrecisionQuantizer` to reuse.
        progress: called as ``progress(done, total, message)`` after each move.

    Raises:
        InvalidOptionError: an unknown mode or precision, an empty split, or a bad count.
    """
    if mode not in PROFILE_MODES:
        raise InvalidOptionError(
            f"Unknown profile mode {mode!r}: use 'fast' (each move scored on at most "
            "fast_samples examples) or 'exhaustive' (on the whole split)."
        )
    if fast_samples < 1 or latency_runs < 0:
        raise InvalidOptionError(
            f"fast_samples must be >= 1 and latency_runs >= 0, got {fast_samples} and "
            f"{latency_runs}."
        )
    chosen = tuple(dict.fromkeys((*parse_precisions(precisions), "int8")))
    started = time.perf_counter()
    x, y = dataset.split(split)
    if len(y) == 0:
        raise InvalidOptionError(f"The {split!r} split is empty: profiling needs examples.")
    if mode == "fast" and len(y) > fast_samples:
        picks = np.sort(np.random.default_rng(0).choice(len(y), fast_samples, replace=False))
        x, y = x[picks], y[picks]
    quantizer = quantizer or PrecisionQuantizer(model, dataset.x_train, options=options)
    metric = dataset_metric(dataset)
    float_quality = metric.score(keras_outputs(model, x), y, x)
    sample = np.asarray(x[:1])[0]

    def measure(tflite: TFLiteModel) -> tuple[float, float]:  # quality and median latency
        quality = metric.score(run_tflite(tflite, x), y, x)
        latency = (
            measure_latency(tflite, sample, warmup=5, runs=latency_runs).p50_ms
            if latency_runs
            else float("nan")
        )
        return quality, latency

    reference = quantizer.quantize()
    float_file = quantizer.quantize(default="float")
    float_tflite_quality = metric.score(run_tflite(float_file, x), y, x)
    int8_quality, int8_latency = measure(reference)
    energy = _energy_inputs(model)
    moves = [
        (layer, p)
        for layer in quantizer.quantizable_layers
        for p in quantizer.allowed(layer, chosen)
    ]
    rows: list[dict[str, Any]] = []
    types = {layer.layer: layer.layer_type for layer in quantizer.layers}
    for done, (layer, precision) in enumerate(moves, start=1):
        # Quality: this layer alone at the precision in the float file. Cost: this layer alone
        # moved in the all-int8 file.
        alone = (
            float_file
            if precision == "float"
            else quantizer.quantize({layer: precision}, default="float")
        )
        deployed = reference if precision == "int8" else quantizer.quantize({layer: precision})
        # A move the quantizer skipped leaves the file as it was; one whose file cannot load
        # is not a choice either.
        applied = (
            alone.ok
            and deployed.ok
            and dict(deployed.precisions).get(layer) == precision
            and (precision == "int8" or deployed.content != reference.content)
        )
        quality = float("nan")
        if applied:
            quality = (
                float_tflite_quality
                if alone is float_file
                else metric.score(run_tflite(alone, x), y, x)
            )
        latency = float("nan")
        if applied and latency_runs:
            latency = (
                int8_latency
                if deployed is reference
                else measure_latency(deployed, sample, warmup=5, runs=latency_runs).p50_ms
            )
        rows.append(
            _row(
                layer,
                types[layer],
                precision,
                applied,
                quality,
                metric.worse_by(float_tflite_quality, quality) if applied else float("nan"),
                deployed.size_bytes - reference.size_bytes,
                latency - int8_latency,
                energy,
            )
        )
        message = f"precision profile {done}/{len(moves)}: {layer} at {precision}: " + (
            f"{metric.format_change(-rows[-1]['change'])} {metric.change_unit} alone, "
            f"{rows[-1]['bytes_delta']:+,} B"
            if applied
            else "not supported by the quantizer for this layer"
        )
        logger.info(message)
        if progress is not None:
            progress(done, len(moves), message)
    table = pd.DataFrame(rows, columns=list(PRECISION_PROFILE_COLUMNS))
    table["latency_share"] = table["latency_delta_ms"] / int8_latency if latency_runs else np.nan
    order = {p: PRECISIONS[p].fidelity for p in PRECISIONS}
    position = {name: i for i, name in enumerate(quantizer.quantizable_layers)}
    table = table.sort_values(
        by=["layer", "precision"],
        key=lambda col: col.map(position) if col.name == "layer" else col.map(order),
        kind="stable",
    ).reset_index(drop=True)
    return PrecisionProfile(
        table=table,
        mode=mode,
        split=split,
        n_samples=len(y),
        metric=metric.name,
        float_quality=float_quality,
        float_tflite_quality=float_tflite_quality,
        int8_quality=int8_quality,
        int8_bytes=reference.size_bytes,
        int8_latency_ms=int8_latency,
        precisions=chosen,
        evaluations=2 + sum(bool(r["applied"]) for r in rows if r["precision"] != "float"),
        seconds=time.perf_counter() - started,
        live_elements=quantizer.live_elements(),
    )


def _energy_inputs(model: Any) -> dict[str, tuple[int, int, int]]:
    """``{layer: (macs, weights, activation elements)}`` per inference, for the estimate."""
    try:
        layers = layer_table(model)
        traffic = layer_traffic(model, "", 1)
    except Exception:  # a model the profiler cannot count (unknown dimensions): no estimate
        return {}
    return {
        row.layer: (int(row.macs), int(row.params), int(traffic.get(row.layer, (0, 1, False))[0]))
        for row in layers.itertuples(index=False)
    }


def _row(
    layer: str,
    layer_type: str,
    precision: str,
    applied: bool,
    quality: float,
    change: float,
    bytes_delta: int,
    latency_delta: float,
    energy: dict[str, tuple[int, int, int]],
) -> dict[str, Any]:
    macs, weights, elements = energy.get(layer, (0, 0, 0))
    energy_delta = (
        layer_energy_uj(macs, weights, elements, precision)
        - layer_energy_uj(macs, weights, elements, "int8")
        if layer in energy
        else float("nan")
    )
    return {
        "layer": layer,
        "type": layer_type,
        "precision": precision,
        "applied": bool(applied),
        "quality": float(quality),
        "change": float(change),
        "bytes_delta": int(bytes_delta),
        "latency_delta_ms": float(latency_delta),
        "latency_share": float("nan"),
        "energy_delta_uj": float(energy_delta),
        "macs": int(macs),
    }
