"""Run ``compress_pipeline`` from a YAML config.

``python -m pipelines.compress pipelines/configs/compress.yaml``

The YAML names the model and data; see ``pipelines/configs/compress.yaml``.
"""

import sys

from zenml_quant.integration import compress_pipeline

if __name__ == "__main__":
    config = sys.argv[1] if len(sys.argv) > 1 else "pipelines/configs/compress.yaml"
    compress_pipeline.with_options(config_path=config)()
