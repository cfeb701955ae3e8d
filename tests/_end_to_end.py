"""What the end-to-end tests of unusual model shapes share: a compress run and a short search."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compress_run(model_path: Path, data_path: Path, targets: dict | None = None) -> Any:
    """``compress_pipeline`` with float32, int8, mixed and QAT (no benchmark) and the gate's
    ``targets``; the run."""
    from zenml_quant.integration import CompressConfig, DataConfig, GateConfig, compress_pipeline

    config = CompressConfig(
        modes=("float32", "int8"),
        qat=True,
        benchmark_threads=None,
        data=DataConfig(source=str(data_path)),
        gate=GateConfig(targets=targets, raise_on_fail=False),
    )
    return compress_pipeline.with_options(enable_cache=False)(
        model_path=str(model_path), config=config
    )


def short_search(model: Any, dataset: Any, trials: int = 2) -> Any:
    """A search of ``trials`` one-at-a-time trials with a token fine-tune and no size pressure."""
    from zenml_quant.search.finetune import FineTuneOptions
    from zenml_quant.search.loop import SearchOptions, search_architecture
    from zenml_quant.search.trial import EvaluationOptions
    from zenml_quant.targets import Targets

    return search_architecture(
        model,
        dataset,
        targets=Targets(max_size_bytes=1_000_000),
        options=SearchOptions(
            max_trials=trials,
            batch_size=1,
            seed=0,
            evaluation=EvaluationOptions(
                fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=3, batch_size=32),
                calibration_samples=32,
                measure_latency=False,
            ),
        ),
    )
