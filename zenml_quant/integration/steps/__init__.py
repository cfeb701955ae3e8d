"""The plugin's ZenML steps, one module per kind of work.

Each step checks its inputs, calls the one core function it is named after, returns named
outputs and logs its key figures as metadata. Step and artifact names start with ``zq_``
(``zq_convert_to_tflite``, ``zq_tflite_int8``), so they are recognisable inside a user's larger
pipeline. Names load on first use: the gate step and its inputs load without TensorFlow.

A step keeps the name of the core function it calls (``steps.quantization_aware_training``
calls ``zenml_quant.qat.quantization_aware_training``), so the one name leads from a run's DAG
to the code that did the work. The two differ on purpose: a step takes what ZenML can record
(plain values and option dataclasses such as ``QATOptions``, ``ConversionOptions``,
``SearchSettings``, and a ``targets`` mapping) and returns named artifacts with reports, while
the core function takes Python objects and returns one result. Inside ZenML the step's name is
prefixed (``zq_quantization_aware_training``), so it never clashes with a user's own steps;
in Python the two live in different packages, and user code imports the one it needs.
Where a step runs once per candidate, the pipeline's id names the candidate instead
(``zq_convert_int8``); :mod:`.ids` maps each id back to its step.

========================  ==================================================================
module                    steps
========================  ==================================================================
``load``                  ``load_keras_model``, ``load_labeled_dataset``, ``train_demo_model_step``
``baseline``              ``evaluate_baseline``
``calibrate``             ``calibrate``
``convert``               ``convert_to_tflite``
``evaluate``              ``evaluate_tflite_model``, ``compare_candidates``
``sensitivity``           ``profile_sensitivity``
``ptq``                   ``quantize_post_training``
``qat``                   ``quantization_aware_training``
``precision``             ``allocate_precisions``, ``int4_aware_qat``
``batchnorm``             ``recalibrate_batchnorm``
``search``                ``search_architecture``, ``search_candidate``, ``apply_edits``
``device``                ``benchmark_on_device``, ``gate_inputs``
``gate``                  ``deployment_gate``
``summary``               ``summarize_run``
========================  ==================================================================
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "load_keras_model": "load",
    "load_labeled_dataset": "load",
    "train_demo_model_step": "load",
    "evaluate_baseline": "baseline",
    "calibrate": "calibrate",
    "convert_to_tflite": "convert",
    "evaluate_tflite_model": "evaluate",
    "compare_candidates": "evaluate",
    "profile_sensitivity": "sensitivity",
    "quantize_post_training": "ptq",
    "quantization_aware_training": "qat",
    "allocate_precisions": "precision",
    "int4_aware_qat": "precision",
    "recalibrate_batchnorm": "batchnorm",
    "search_architecture": "search",
    "search_candidate": "search",
    "apply_edits": "search",
    "benchmark_on_device": "device",
    "gate_inputs": "device",
    "deployment_gate": "gate",
    "summarize_run": "summary",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
