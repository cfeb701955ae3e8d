"""Run ``retrain_and_compress`` now, or register it on a cron schedule.

``python -m pipelines.retrain`` runs it once on the active stack;
``python -m pipelines.retrain "0 3 * * 1"`` schedules it every Monday at 03:00 (needs an
orchestrator that schedules, e.g. Kubernetes or Kubeflow; the local one has none and gets a
clear error). Options: ``pipelines/configs/retrain.yaml``.
"""

import sys

from zenml import Model

from zenml_quant.integration import retrain_and_compress, schedule_retrain_and_compress

if __name__ == "__main__":
    runnable = retrain_and_compress.with_options(
        model=Model(name="zenml-quant-demo"), config_path="pipelines/configs/retrain.yaml"
    )
    if len(sys.argv) > 1:
        schedule_retrain_and_compress(sys.argv[1], pipeline_=runnable)
    else:
        runnable()
