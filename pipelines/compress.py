"""Run ``compress_pipeline`` with a YAML run config.

``python -m pipelines.compress MODEL DATA [CONFIG]``, e.g.
``python -m pipelines.compress model.keras digits pipelines/configs/compress.yaml``.
The config sets the modes and per-step options; see ``pipelines/configs/compress.yaml``.
"""

import sys

from zenml_quant.integration import compress_pipeline

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model_path, data_source = sys.argv[1], sys.argv[2]
    config = sys.argv[3] if len(sys.argv) > 3 else "pipelines/configs/compress.yaml"
    compress_pipeline.with_options(config_path=config)(
        model_path=model_path, data_source=data_source
    )
