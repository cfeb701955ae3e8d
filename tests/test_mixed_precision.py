"""Per-layer precisions through ai-edge-quantizer: plans, recipes, and what the file holds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zenml_quant.convert import compact_tensor_names, convert_model
from zenml_quant.errors import InvalidOptionError
from zenml_quant.interpreter import run_tflite
from zenml_quant.metrics import METRICS
from zenml_quant.mixed_precision import PrecisionQuantizer
from zenml_quant.precisions import DEFAULT_PRECISIONS, op_precisions, parse_precisions


@pytest.fixture(scope="module")
def quantizer(digits_model, digits):
    return PrecisionQuantizer(digits_model, digits.x_train)


def _accuracy(model, data):
    return METRICS["top1"].score(run_tflite(model, data.x_test), data.y_test, data.x_test)


def _weight_types(content: bytes) -> dict[str, str]:
    """The stored type of each CONV_2D / FULLY_CONNECTED weight tensor, by op output name."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(flatbuffer_utils.schema_fb.TensorType).items() if k.isupper()}
    result = {}
    for op in graph.operators:
        code = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        if code in ("CONV_2D", "FULLY_CONNECTED"):
            out = graph.tensors[op.outputs[0]].name.decode()
            result[out] = names[graph.tensors[op.inputs[1]].type]
    return result


def test_precision_names_parse_with_aliases_and_refuse_unknown_ones():
    assert parse_precisions(None) == DEFAULT_PRECISIONS == ("int4", "int8", "float")
    assert parse_precisions("float32, w4a8,16x8") == ("int4", "int16x8", "float")
    with pytest.raises(InvalidOptionError, match=r"'int3'.*int4_weights"):
        parse_precisions("int3,int8")
    with pytest.raises(InvalidOptionError, match="none given"):
        parse_precisions(" , ")


def test_w4a8_file_holds_int4_weights_and_runs_in_litert(digits_model, digits):
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    w4a8 = convert_model(digits_model, "w4a8", representative_data=digits.x_train)
    assert w4a8.ok and w4a8.mode == "w4a8"
    # Integer kernels all the way: no dequantize op, int4 weights on every conv and dense.
    assert set(w4a8.operators) <= {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"}
    assert set(_weight_types(w4a8.content).values()) == {"INT4"}
    assert dict(w4a8.precisions) == {"conv1": "int4", "conv2": "int4", "logits": "int4"}
    assert w4a8.size_bytes < 0.75 * int8.size_bytes
    assert w4a8.inputs[0].dtype == "int8"  # int8 activations start at the input
    assert _accuracy(w4a8, digits) >= _accuracy(int8, digits) - 0.05


def test_a_plan_mixes_precisions_and_the_file_says_which_each_layer_got(quantizer, digits):
    model = quantizer.quantize({"conv1": "float", "conv2": "int4", "logits": "int16x8"})
    assert model.mode == "mixed"
    assert dict(model.precisions) == {"conv1": "float", "conv2": "int4", "logits": "int16x8"}
    assert model.float_layers == ("conv1",)
    # The input stays int8, dequantized for the float conv1 and quantized again after it.
    assert model.inputs[0].dtype == "int8"
    assert model.operators[:3] == ("DEQUANTIZE", "CONV_2D", "QUANTIZE")
    assert _accuracy(model, digits) > 0.8
    weight_only = quantizer.quantize({"logits": "int4_weights", "conv2": "float16_weights"})
    assert dict(weight_only.precisions)["logits"] == "int4_weights"
    assert dict(weight_only.precisions)["conv2"] == "float16_weights"
    assert "DEQUANTIZE" in weight_only.operators


def test_op_precisions_reads_the_converters_files_too(digits_model, digits):
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    float32 = convert_model(digits_model, "float32")
    assert set(op_precisions(int8.content).values()) == {"int8"}
    assert set(op_precisions(float32.content).values()) == {"float"}


def test_recipe_round_trips_through_ai_edge_quantizer(quantizer):
    from ai_edge_quantizer import quantizer as aeq

    plan = {"conv2": "int4", "logits": "float"}
    model = quantizer.quantize(plan)
    recipe = json.loads(model.recipe)
    assert recipe[0]["regex"] == ".*" and len(recipe) == 3
    # With GPTQ (the default) the int4 weights are rounded in the float file first.
    source = quantizer.source_content(plan, "int8")
    assert source != quantizer.float_content
    assert any("rounded by GPTQ" in note for note in model.notes)
    again = aeq.Quantizer(source)
    again.load_quantization_recipe(recipe)
    content = bytes(
        again.quantize(quantizer.calibration, enable_progress_report=False).quantized_model
    )
    assert compact_tensor_names(content) == model.content


def test_bad_plans_are_refused_with_the_fix(quantizer):
    with pytest.raises(InvalidOptionError, match=r"No layer named 'dense_9'.*conv1"):
        quantizer.quantize({"dense_9": "int4"})
    with pytest.raises(InvalidOptionError, match=r"Unknown precision 'int3'"):
        quantizer.quantize({"conv1": "int3"})
    with pytest.raises(InvalidOptionError, match=r"pool \(int4\).*no weights"):
        quantizer.quantize({"pool": "int4"})


def test_calibration_data_must_be_finite(digits_model, digits):
    from zenml_quant.errors import InvalidDatasetError

    bad = digits.x_train[:50].copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(InvalidDatasetError, match="NaN"):
        PrecisionQuantizer(digits_model, bad)


def _run_runner(content: bytes, tmp_path, env=None):
    import subprocess
    import sys

    from zenml_quant.benchmark.local import RUNNER_PATH

    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    cmd = [sys.executable, str(RUNNER_PATH), "--model", str(path), "--min-runs", "5"]
    proc = subprocess.run(
        [*cmd, "--min-seconds", "0"], capture_output=True, text=True, env=env, check=False
    )
    return proc.returncode, json.loads(proc.stdout)


def test_the_device_runner_benchmarks_a_w4a8_file(quantizer, tmp_path):
    w4a8 = quantizer.quantize({"conv1": "int4", "conv2": "int4", "logits": "int4"})
    code, payload = _run_runner(w4a8.content, tmp_path)
    assert code == 0 and payload["error"] is None and payload["runs"] >= 5
    assert payload["size_bytes"] == w4a8.size_bytes


def test_a_tflite_runtime_device_gets_a_note_when_it_cannot_load_the_file(quantizer, tmp_path):
    # A stand-in for tflite-runtime 2.14, which has no kernel for the int4 weights.
    fake = tmp_path / "site"
    (fake / "ai_edge_litert").mkdir(parents=True)
    (fake / "ai_edge_litert" / "__init__.py").write_text("raise ImportError('not here')\n")
    (fake / "tflite_runtime").mkdir()
    (fake / "tflite_runtime" / "__init__.py").write_text("__version__ = '2.14.0'\n")
    (fake / "tflite_runtime" / "interpreter.py").write_text(
        "class Interpreter:\n"
        "    def __init__(self, **kwargs):\n"
        "        raise ValueError(\"Didn't find op for builtin opcode 'CONV_2D' version '7'\")\n"
    )
    w4a8 = quantizer.quantize({"conv2": "int4"})
    code, payload = _run_runner(w4a8.content, tmp_path, env={"PYTHONPATH": str(fake)})
    assert code == 2
    assert "version '7'" in payload["error"] and "install ai-edge-litert" in payload["error"]
