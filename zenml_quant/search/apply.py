"""Apply an edit plan the way the search did: rebuild, transfer weights, and (given the data)
fine-tune with the settings and seed the plan records, so a suggestion is reproduced exactly."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np

from ..errors import InvalidOptionError
from ..inputs import for_keras
from ..outputs import scored
from ..tasks import dataset_metric, dataset_task
from ..types import LabeledDataset
from .edits import EditPlan
from .finetune import FineTuneOptions, fine_tune, outputs_are_logits
from .rebuild import EditedModel, apply_edits
from .recalibrate import distillation_teacher, recalibrated
from .space import SearchSpace, SpaceOptions

__all__ = ["apply_plan", "plan_meta"]


def plan_meta(
    trial: int,
    seed: int,
    options: FineTuneOptions,
    batchnorm_examples: int | None = None,
    space: SpaceOptions | None = None,
) -> dict[str, Any]:
    """What the search writes into a candidate's plan so it can be rebuilt identically
    (``batchnorm_examples``: BatchNorm statistics re-estimated on that many train examples
    after the fine-tune, when validation says so; None: not; ``space``: the search space the
    plan's edits were drawn from, when not the default one)."""
    meta: dict[str, Any] = {
        "trial": trial,
        "seed": seed,
        "batchnorm_examples": batchnorm_examples,
        "fine_tune": asdict(options),
    }
    if space is not None and space != SpaceOptions():
        meta["space"] = asdict(space)
    return meta


def _recorded_space(meta: dict[str, Any]) -> SpaceOptions | None:
    """The SpaceOptions a plan's meta records (lists back to tuples: meta goes through JSON)."""
    recorded = meta.get("space")
    if not recorded:
        return None
    try:
        return SpaceOptions(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in dict(recorded).items()}
        )
    except TypeError as exc:
        raise InvalidOptionError(f"The plan's meta.space is malformed: {exc}") from None


def apply_plan(
    model: Any,
    plan: EditPlan,
    dataset: LabeledDataset | None = None,
    *,
    fine_tune_options: FineTuneOptions | None = None,
    seed: int | None = None,
    space_options: SpaceOptions | None = None,
) -> EditedModel:
    """``apply_edits``, then fine-tuning on ``dataset``'s train split when one is given.

    The fine-tuning settings, seed and search space default to those recorded in
    ``plan.meta`` by the search (a plan without them, e.g. written by hand, is fine-tuned with
    ``FineTuneOptions()`` in the default space); pass
    ``fine_tune_options=FineTuneOptions(epochs=0)`` to skip fine-tuning.
    """
    meta = dict(plan.meta or {})
    seed = int(meta.get("seed", 0)) if seed is None else seed
    space_options = space_options or _recorded_space(meta)
    edited = apply_edits(model, plan, seed=seed, space=SearchSpace(model, space_options))
    if dataset is None:
        return edited
    if fine_tune_options is None:
        recorded = dict(meta.get("fine_tune", {}))
        if recorded:  # plans written before the schedule was recorded used a constant rate
            recorded.setdefault("schedule", "constant")
        try:
            fine_tune_options = FineTuneOptions(**recorded)
        except TypeError as exc:
            raise InvalidOptionError(f"The plan's meta.fine_tune is malformed: {exc}") from None
    fine_tune_options = fine_tune_options.resolved(model, dataset_task(dataset))
    teacher = None
    examples = meta.get("batchnorm_examples")
    if fine_tune_options.distill:
        source = model
        if examples:  # the teacher the search distilled from
            source, _ = distillation_teacher(model, dataset, max_examples=int(examples))
        outputs = scored(source.predict(for_keras(dataset.x_train), batch_size=256, verbose=0))
        teacher = np.asarray(
            outputs if outputs_are_logits(model) else np.log(outputs + 1e-7), dtype=np.float32
        )
    fine_tune(
        edited.model,
        dataset.x_train,
        dataset.y_train,
        fine_tune_options,
        teacher_logits=teacher,
        seed=seed,
        task=dataset_task(dataset),
        reference=model,
    )
    if examples and len(plan):  # the same decision as the trial's, on the same data
        recomputed, _, _ = recalibrated(
            edited.model,
            dataset.x_train,
            dataset.x_val,
            dataset.y_val,
            dataset_metric(dataset),
            max_examples=int(examples),
            seed=seed,
        )
        edited = replace(edited, model=recomputed)
    return edited
