"""A search run in a fresh process with the in-process executor at one TensorFlow thread (the
threads of the process pool's workers): the reproducibility test's other side."""

from __future__ import annotations

from typing import Any


def inprocess_search(model_path: str, proposer: str, options_kwargs: dict[str, Any]) -> dict:
    from zenml_quant._compat import tf

    # Before the model is loaded, which starts TensorFlow's runtime and fixes its threads.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from zenml_quant.conform import conform_to_model
    from zenml_quant.datasets import load_digits
    from zenml_quant.models import load_model
    from zenml_quant.search.executors import InProcessExecutor
    from zenml_quant.search.loop import SearchOptions, search_architecture

    executor = InProcessExecutor(threads=1)
    digits = conform_to_model(load_digits(), input_shape=(8, 8, 1), num_classes=10)
    model = load_model(model_path)
    targets = options_kwargs.pop("targets")
    options = SearchOptions(proposer=proposer, **options_kwargs)
    with executor:
        result = search_architecture(
            model, digits, targets=targets, options=options, executor=executor
        )
    return summary(result)


def summary(result: Any) -> dict:
    """What must be identical between two runs of one seed."""
    return {
        "plans": [r.plan.key() for r in result.records],
        "accuracy": [r.accuracy for r in result.records],
        "size": [r.size_bytes for r in result.records],
        "pareto": result.pareto,
        "best": result.best_trial,
        "suggestions": [s.plan.key() for s in result.suggestions],
    }
