"""Which step function runs under a pipeline's step id, so a run config's step options are
checked by name before anything runs.

A pipeline gives a step its own name as id (``zq_quantization_aware_training``) unless it runs
that step once per candidate, then the id carries the candidate (``zq_convert_int8``,
``zq_evaluate_qat``, ``zq_benchmark_search_1``). ZenML only finds a misspelt or retired
parameter once the run has started compiling; this finds it first and names the step's real
parameters. It reads the parameters from the step's source rather than importing it, because
importing a step loads TensorFlow and sets up a ZenML store, and a bad option must be refused
before either. ``tests/test_pipeline.py`` checks the table against the ids a real run used,
and ``tests/test_boundary.py`` the parameters read against the imported steps.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["step_for_id", "step_parameters", "unknown_parameters"]

# Ids the pipelines build from a candidate's name or give a step a second time.
_BY_PATTERN = (
    (re.compile(r"zq_convert_\w+"), "convert_to_tflite"),
    (re.compile(r"zq_evaluate_(?!baseline$)\w+"), "evaluate_tflite_model"),
    (re.compile(r"zq_benchmark_(?!on_device$)\w+"), "benchmark_on_device"),
    (re.compile(r"zq_search_candidate_\d+"), "search_candidate"),
    (re.compile(r"zq_quantize_mixed"), "quantize_post_training"),
    (re.compile(r"zq_allocate_mixed"), "allocate_precisions"),
    (re.compile(r"zq_load_training_data"), "load_labeled_dataset"),
)


def _exports() -> dict[str, str]:
    from . import _EXPORTS

    return _EXPORTS


def _own_ids() -> dict[str, str]:
    # train_demo_model_step's step is named zq_train_demo_model (the suffix only avoids a clash
    # with the core function it calls).
    return {"zq_" + name.removesuffix("_step"): name for name in _exports()}


def step_for_id(step_id: str) -> str | None:
    """The name of the step function (in :mod:`zenml_quant.integration.steps`) that the
    plugin's pipelines run under ``step_id``, or None for an id they never use."""
    own = _own_ids()
    if step_id in own:
        return own[step_id]
    for pattern, name in _BY_PATTERN:
        if pattern.fullmatch(step_id):
            return name
    return None


def step_parameters(function: str) -> list[str]:
    """The parameters of the step ``function`` (a name in :mod:`zenml_quant.integration.steps`),
    in order, read from its module's source without importing it."""
    source = Path(__file__).with_name(_exports()[function] + ".py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    raise LookupError(f"no function {function} in the steps' sources")


def unknown_parameters(step_id: str, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """``names`` that the step under ``step_id`` does not take, and the parameters it takes
    (both empty for an id the plugin's pipelines never use)."""
    function = step_for_id(step_id)
    if function is None:
        return [], []
    known = step_parameters(function)
    return sorted(set(names) - set(known)), known
