"""Run ``nas_pipeline`` (architecture search -> benchmark -> gate) with a YAML run config.

``python -m pipelines.nas MODEL [CONFIG]``, e.g.
``python -m pipelines.nas model.keras pipelines/configs/nas.yaml``.
The config's ``parameters: config:`` is the pipeline's one ``NasConfig``: the targets, the data
and, under ``search:``, every search setting (budget, proposer, fine-tuning, executor).
"""

import sys

from zenml_quant.integration import nas_pipeline

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_path = sys.argv[1]
    config = sys.argv[2] if len(sys.argv) > 2 else "pipelines/configs/nas.yaml"
    nas_pipeline.with_options(config_path=config)(model_path=model_path)
