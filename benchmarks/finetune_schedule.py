"""How the fine-tune's learning-rate schedule decides what a short fine-tune gives back.

The search fine-tunes every candidate briefly from pre-trained weights. This measures, on the
project's ResNet-8 (the zoo's MLPerf Tiny architecture trained 24 epochs on the CIFAR-10
subset), the float validation accuracy after the same short fine-tune with a constant Adam
rate and with the rate decayed to 0 on a cosine (``FineTuneOptions.schedule``), for the
unchanged model and for one whose last stage is pruned to 0.5x/0.25x channels (0.39x its
parameters). Every run is distilled from the original, seed 0, on 20,000 training images;
validation is 5,000 test-split images. Writes the ``finetune-schedule`` section of
``BENCHMARKS.md``. Run from the project root:
``python benchmarks/finetune_schedule.py [--epochs 4 8]``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
from _sections import write_section  # beside this script
from mixed_precision import load_case

from zenml_quant.search.edits import Edit, EditPlan
from zenml_quant.search.finetune import FineTuneOptions, fine_tune
from zenml_quant.search.rebuild import apply_edits
from zenml_quant.search.space import SearchSpace
from zenml_quant.tasks import dataset_metric

EDITS = {
    "unchanged": (),
    "stage 3 pruned (group 0.5, inner 0.25)": (
        Edit("stage3_shortcut", "scale", 0.5),
        Edit("stage3_conv1", "scale", 0.25),
    ),
}
SETTINGS = (("constant", 5e-4), ("cosine", 5e-4), ("cosine", 1e-3), ("cosine", 2e-3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[4])
    args = p.parse_args()
    model, data, note = load_case("resnet8")
    metric = dataset_metric(data)
    x_val, y_val = data.split("validation")
    teacher = np.log(model.predict(data.x_train, batch_size=256, verbose=0) + 1e-7)
    original = metric.score(model.predict(x_val, verbose=0), y_val, x_val)
    space = SearchSpace(model)
    rows = []
    for label, edits in EDITS.items():
        plan = EditPlan(edits, model=model.name)
        for epochs in args.epochs:
            for schedule, rate in SETTINGS:
                edited = apply_edits(model, plan, seed=0, space=space).model
                before = metric.score(edited.predict(x_val, verbose=0), y_val, x_val)
                options = FineTuneOptions(
                    epochs=epochs, learning_rate=rate, schedule=schedule, distill=True
                )
                started = time.perf_counter()
                fine_tune(
                    edited,
                    data.x_train,
                    data.y_train,
                    options,
                    teacher_logits=teacher.astype(np.float32),
                    seed=0,
                )
                seconds = time.perf_counter() - started
                after = metric.score(edited.predict(x_val, verbose=0), y_val, x_val)
                row = (label, edited.count_params(), epochs, schedule, rate, before, after, seconds)
                print(row, flush=True)
                rows.append(row)
    lines = [
        "## Fine-tuning schedule: constant rate against cosine decay (ResNet-8)",
        "",
        f"Command: `python benchmarks/finetune_schedule.py {shlex.join(sys.argv[1:])}`. "
        f"Model: {note}; float "
        f"validation {original:.2%} before any fine-tune. Fine-tune: Adam, batch 64, distilled "
        "from the original (alpha 0.5, T 4), seed 0, 20,000 training images; validation: "
        "5,000 test-split images, float model.",
        "",
        "| model | params | epochs | schedule | rate | val before | val after | change | s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for label, params, epochs, schedule, rate, before, after, seconds in rows:
        lines.append(
            f"| {label} | {params:,} | {epochs} | {schedule} | {rate:g} | {before:.2%} | "
            f"{after:.2%} | {100 * (after - original):+.2f} | {seconds:.0f} |"
        )
    lines += ["", "Change: points against the unchanged original before fine-tuning."]
    write_section("finetune-schedule", "\n".join(lines))


if __name__ == "__main__":
    main()
