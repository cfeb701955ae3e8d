"""Run ``nas_pipeline`` (architecture search -> benchmark -> gate) with a YAML run config.

``python -m pipelines.nas MODEL DATA [CONFIG]``, e.g.
``python -m pipelines.nas model.keras digits pipelines/configs/nas.yaml``.
The config sets the targets, the budget and the ``search_architecture`` step's options.
"""

import sys

from zenml_quant.integration import nas_pipeline

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model_path, data_source = sys.argv[1], sys.argv[2]
    config = sys.argv[3] if len(sys.argv) > 3 else "pipelines/configs/nas.yaml"
    nas_pipeline.with_options(config_path=config)(model_path=model_path, data_source=data_source)
