"""Architecture search that edits a pre-trained model under accuracy and resource targets.

The pieces, each usable alone:

- :class:`SearchSpace` (``space``): the per-layer positions and which choices build;
  :class:`EditPlan` / :class:`Edit` (``edits``): the edit format, also written to YAML.
- :func:`apply_edits` / :func:`apply_plan`: rebuild a model from a plan, keeping the weights of
  unchanged layers (and fine-tuning as the search did).
- :class:`ControllerRNN` and :class:`RandomSearch` (``proposers``): ask/tell proposers that
  know nothing of Keras.
- :func:`evaluate_trial` (``trial``): build, fine-tune, convert and measure one candidate.
- Executors (``executors``): in-process, a process pool, or Ray.
- :func:`search_architecture` (``loop``): the loop that joins them, returning a
  :class:`SearchResult` with the history, Pareto suggestions and the best model.
- :class:`SearchSettings` / :func:`run_search` (``settings``): what a user sets for a whole
  search, in one object a pipeline config can hold, and the call that runs it.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# Loaded on first use, so the light parts (settings, edit plans) load without TensorFlow.
_EXPORTS: dict[str, str] = {
    "apply_plan": "apply",
    "Edit": "edits",
    "EditPlan": "edits",
    "EnergyEstimate": "energy",
    "EnergyTable": "energy",
    "estimate_energy": "energy",
    "InProcessExecutor": "executors",
    "ProcessPoolExecutor": "executors",
    "RayExecutor": "executors",
    "TrialExecutor": "executors",
    "make_executor": "executors",
    "FineTuneOptions": "finetune",
    "SearchOptions": "loop",
    "SearchResult": "loop",
    "Suggestion": "loop",
    "search_architecture": "loop",
    "pareto_front": "pareto",
    "ControllerRNN": "proposers",
    "Proposal": "proposers",
    "Proposer": "proposers",
    "RandomSearch": "proposers",
    "EditedModel": "rebuild",
    "apply_edits": "rebuild",
    "meets_targets": "reward",
    "missed_targets": "reward",
    "reward": "reward",
    "SearchSpace": "space",
    "SpaceOptions": "space",
    "EvaluationOptions": "trial",
    "SearchContext": "trial",
    "evaluate_trial": "trial",
    "RewardOptions": "types",
    "Targets": "types",
    "TrialOutcome": "types",
    "TrialRecord": "types",
    "TrialTask": "types",
    "SearchSettings": "settings",
    "run_search": "settings",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
