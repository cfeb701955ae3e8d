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
"""

from .apply import apply_plan
from .edits import Edit, EditPlan
from .energy import EnergyEstimate, EnergyTable, estimate_energy
from .executors import (
    InProcessExecutor,
    ProcessPoolExecutor,
    RayExecutor,
    TrialExecutor,
    make_executor,
)
from .finetune import FineTuneOptions
from .loop import SearchOptions, SearchResult, Suggestion, search_architecture
from .pareto import pareto_front
from .proposers import ControllerRNN, Proposal, Proposer, RandomSearch
from .rebuild import EditedModel, apply_edits
from .reward import meets_targets, missed_targets, reward
from .space import SearchSpace, SpaceOptions
from .trial import EvaluationOptions, SearchContext, evaluate_trial
from .types import RewardOptions, Targets, TrialOutcome, TrialRecord, TrialTask

__all__ = [
    "ControllerRNN",
    "Edit",
    "EditPlan",
    "EditedModel",
    "EnergyEstimate",
    "EnergyTable",
    "EvaluationOptions",
    "FineTuneOptions",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "Proposal",
    "Proposer",
    "RandomSearch",
    "RayExecutor",
    "RewardOptions",
    "SearchContext",
    "SearchOptions",
    "SearchResult",
    "SearchSpace",
    "SpaceOptions",
    "Suggestion",
    "Targets",
    "TrialExecutor",
    "TrialOutcome",
    "TrialRecord",
    "TrialTask",
    "apply_edits",
    "apply_plan",
    "estimate_energy",
    "evaluate_trial",
    "make_executor",
    "meets_targets",
    "missed_targets",
    "pareto_front",
    "reward",
    "search_architecture",
]
