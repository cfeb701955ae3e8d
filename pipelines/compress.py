"""Run ``compress_pipeline`` with a YAML run config.

``python -m pipelines.compress MODEL [CONFIG]``, e.g.
``python -m pipelines.compress model.keras pipelines/configs/compress.yaml``.
The config's ``parameters: config:`` is the pipeline's one ``CompressConfig`` (the data source
among it) and ``steps:`` holds each step's options; see ``pipelines/configs/compress.yaml``.
"""

import sys

from zenml_quant.integration import compress_pipeline

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_path = sys.argv[1]
    config = sys.argv[2] if len(sys.argv) > 2 else "pipelines/configs/compress.yaml"
    compress_pipeline.with_options(config_path=config)(model_path=model_path)
