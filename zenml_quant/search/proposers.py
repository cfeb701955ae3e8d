"""Proposers: what chooses the next candidate of the architecture search.

A proposer knows nothing of Keras. It sees a :class:`DecisionSpace` (how many choices each
position has and which are valid given the decisions already taken) and speaks ask/tell:
:meth:`Proposer.ask` returns a :class:`Proposal` (one choice per position), the caller builds and
evaluates the candidate however it likes, then :meth:`Proposer.tell` reports the reward. Several
proposals may be out at once (a pool of workers) and be told in any order.

- :class:`RandomSearch` samples uniformly among the valid choices, position by position: the
  baseline a learning proposer must beat.
- :class:`ControllerRNN` is the LSTM policy of Zoph & Le's NAS and ENAS (Pham et al. 2018),
  trained with REINFORCE, a moving-average baseline and an entropy bonus.
- :class:`LocalSearch` grows from the best candidate so far, one or two changes at a time, as
  NetAdapt (Yang et al. 2018) shrinks a network step by step.

Both are seeded and touch no global random state: the same seed and the same sequence of
rewards give the same proposals.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._compat import tf
from .._validate import as_finite
from ..errors import InvalidOptionError

__all__ = [
    "ControllerRNN",
    "DecisionSpace",
    "FullSpace",
    "LocalSearch",
    "Proposal",
    "Proposer",
    "RandomSearch",
]


class DecisionSpace(Protocol):
    """The choices of a search: ``sizes[t]`` choices at position ``t``, fixed.

    ``mask(prefix)`` returns a bool array of length ``sizes[len(prefix)]`` telling which choices
    are valid at position ``len(prefix)`` after the decisions ``prefix``; at least one is True.
    Choice 0 usually means "keep the original layer", but nothing here relies on it.
    """

    @property
    def sizes(self) -> tuple[int, ...]: ...

    def mask(self, prefix: Sequence[int]) -> np.ndarray: ...


@dataclass(frozen=True)
class FullSpace:
    """A decision space whose every choice is always valid."""

    sizes: tuple[int, ...]

    def mask(self, prefix: Sequence[int]) -> np.ndarray:
        return np.ones(self.sizes[len(prefix)], dtype=bool)


@dataclass(frozen=True)
class Proposal:
    """One candidate: ``decisions[t]`` is the choice taken at position ``t``."""

    id: int
    decisions: tuple[int, ...]


class Proposer(Protocol):
    def ask(self) -> Proposal: ...

    def tell(self, proposal_id: int, reward: float | None) -> None: ...


def _bad(value: object) -> bool:
    """Not a finite real number (bools excluded)."""
    return as_finite(value) is None


def _mask(space: DecisionSpace, prefix: Sequence[int], size: int) -> np.ndarray:
    mask = np.asarray(space.mask(tuple(prefix)), dtype=bool)
    if mask.shape != (size,) or not mask.any():
        raise InvalidOptionError(
            f"The decision space's mask at position {len(prefix)} must be {size} booleans with at"
            f" least one True, got {mask!r}."
        )
    return mask


class _AskTell:
    """Proposal ids, masked sequential sampling, and what is still waiting for its reward."""

    space: DecisionSpace
    sizes: tuple[int, ...]
    seed: int
    failure_reward: float
    _rng: np.random.Generator
    _next_id: int

    def __init__(self, space: DecisionSpace, seed: int, failure_reward: float) -> None:
        sizes = tuple(space.sizes)
        if not sizes or any(
            isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in sizes
        ):
            raise InvalidOptionError(
                f"A decision space needs at least one position, each with >= 1 choice; got {sizes!r}."
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise InvalidOptionError(f"seed must be an int, got {seed!r}.")
        if _bad(failure_reward):
            raise InvalidOptionError(f"failure_reward must be a number, got {failure_reward!r}.")
        self.space = space
        self.sizes = tuple(int(n) for n in sizes)
        self.seed = int(seed)
        self.failure_reward = float(failure_reward)
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 0
        self._pending: dict[int, tuple[Proposal, list[np.ndarray]]] = {}

    @property
    def pending(self) -> tuple[int, ...]:
        """Ids asked but not yet told."""
        return tuple(self._pending)

    def ask(self) -> Proposal:
        """The next candidate. Each position is sampled after the ones before it, so a mask that
        depends on the prefix is always respected."""
        return self._register(*self._draw())

    def _draw(self) -> tuple[tuple[int, ...], list[np.ndarray]]:
        decisions: list[int] = []
        masks: list[np.ndarray] = []
        self._begin()
        for size in self.sizes:
            masks.append(_mask(self.space, decisions, size))
            decisions.append(self._choose(decisions, masks[-1]))
        return tuple(decisions), masks

    def _register(self, decisions: tuple[int, ...], masks: list[np.ndarray]) -> Proposal:
        proposal = Proposal(self._next_id, decisions)
        self._next_id += 1
        self._pending[proposal.id] = (proposal, masks)
        return proposal

    def tell(self, proposal_id: int, reward: float | None) -> None:
        """Report a proposal's reward. None (a failed trial), NaN or an infinite reward counts as
        ``failure_reward``. Each asked id is told exactly once."""
        if proposal_id not in self._pending:
            told = isinstance(proposal_id, int) and 0 <= proposal_id < self._next_id
            raise InvalidOptionError(
                f"Proposal {proposal_id!r} was already told; each proposal is told once."
                if told
                else f"Unknown proposal id {proposal_id!r}: tell the id of a proposal from ask()."
            )
        if reward is not None and (
            isinstance(reward, bool) or not isinstance(reward, numbers.Real)
        ):
            raise InvalidOptionError(f"A reward is a number or None, got {reward!r}.")
        value = self.failure_reward if reward is None or _bad(reward) else float(reward)
        proposal, masks = self._pending.pop(proposal_id)
        self._learn(proposal.decisions, masks, value)

    def _begin(self) -> None:
        """Hook before a proposal's first choice."""

    def _choose(self, prefix: Sequence[int], mask: np.ndarray) -> int:
        raise NotImplementedError

    def _learn(self, decisions: tuple[int, ...], masks: list[np.ndarray], reward: float) -> None:
        """Hook for a told reward."""


class RandomSearch(_AskTell):
    """Uniform among the valid choices at each position. Rewards are accepted and ignored."""

    def __init__(self, space: DecisionSpace, *, seed: int = 0, failure_reward: float = 0.0) -> None:
        super().__init__(space, seed, failure_reward)

    def _choose(self, prefix: Sequence[int], mask: np.ndarray) -> int:
        return int(self._rng.choice(np.flatnonzero(mask)))


class LocalSearch(_AskTell):
    """Hill climbing from the best candidate told so far (at first: every position at choice
    0, the original).

    Each proposal copies the best decisions and changes ``moves`` positions or fewer (1 to
    ``moves``, uniformly) to another valid choice, picked uniformly; a later position whose
    copied choice the changes made invalid falls back to its first valid choice. A proposal
    becomes the new best when its reward beats the best's; :meth:`anchor` sets the reward to
    beat before anything is told (the loop passes the original's), and :meth:`rebase` moves
    the climb to another point (the loop's best, which puts the accuracy floor first).

    Under :meth:`pressure` (the loop applies it while the best candidate misses a resource
    target) with a ``cost`` (decisions -> an estimate such as the weight bytes), the proposals
    shrink the model, as NetAdapt's steps do, and the reward decides which shrinking step is
    kept:

    - Given a ``goal`` (the cost at which the best would meet its target), the single moves
      and pairs of moves from the best that reach it come first, each once: the least
      ``disruption`` first when that is given, then the least drastic (highest cost). A target
      that one or two well-placed cuts can meet (a ResNet's last stage pruned to 3/8 of its
      channels: its inner convolution and its residual group) is tried at once instead of
      waiting for random draws to find it.
    - Then, or without a goal, ``draws`` moves are drawn and one of those that cost less than
      the best is taken, uniformly. Without a cheaper draw, the first draw is taken.
    """

    #: How many of the most cutting single moves are paired into two-move proposals (24 make
    #: 276 pairs: a few seconds to cost on ResNet-8, once per base).
    PAIR_POOL = 24

    def __init__(
        self,
        space: DecisionSpace,
        *,
        seed: int = 0,
        failure_reward: float = 0.0,
        moves: int = 2,
        cost: Callable[[tuple[int, ...]], float] | None = None,
        draws: int = 8,
        disruption: Callable[[tuple[int, ...]], float] | None = None,
    ) -> None:
        super().__init__(space, seed, failure_reward)
        for name, value in (("moves", moves), ("draws", draws)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise InvalidOptionError(f"LocalSearch.{name} is an integer >= 1, got {value!r}.")
        for name, fn in (("cost", cost), ("disruption", disruption)):
            if fn is not None and not callable(fn):
                raise InvalidOptionError(
                    f"LocalSearch.{name} is a function of decisions, got {fn!r}."
                )
        self.moves, self.draws, self.cost = int(moves), int(draws), cost
        self.disruption = disruption
        self._pressure = False
        self._goal: float | None = None
        #: (cost, move) of the shrinking moves from ``_budget_key`` (a best) not asked yet.
        self._budget_moves: list[tuple[float, tuple[tuple[int, ...], list[np.ndarray]]]] = []
        self._budget_key: tuple[int, ...] | None = None
        self.best: tuple[int, ...] = tuple(0 for _ in self.sizes)
        self.best_reward = -np.inf
        self._changing: frozenset[int] = frozenset()

    def anchor(self, reward: float | None) -> None:
        """The reward of the starting point (choice 0 everywhere), when it is known."""
        if reward is not None and not _bad(reward) and self.best_reward == -np.inf:
            self.best_reward = float(reward)

    def rebase(self, decisions: Sequence[int], reward: float | None) -> None:
        """Climb from ``decisions`` from now on (the loop passes its own best: the most
        rewarding candidate at or above the accuracy floor, which a reward alone can miss)."""
        if len(decisions) != len(self.sizes):
            raise InvalidOptionError(
                f"rebase takes {len(self.sizes)} decisions, got {len(decisions)}."
            )
        self.best = tuple(int(d) for d in decisions)
        self.best_reward = -np.inf if reward is None or _bad(reward) else float(reward)

    def pressure(self, on: bool, goal: float | None = None) -> None:
        """Whether the next proposals should cost less than the best, and the cost (in
        ``cost``'s units) at which the best would meet its target, when known (see the class)."""
        if goal is not None and _bad(goal):
            raise InvalidOptionError(f"LocalSearch.pressure's goal is a number, got {goal!r}.")
        self._pressure = bool(on)
        self._goal = float(goal) if on and goal is not None else None

    def ask(self) -> Proposal:
        if self._pressure and self.cost is not None and self._goal is not None:
            move = self._next_budget_move(self.cost, self._goal)
            if move is not None:
                return self._register(*move)
        first = self._draw()
        if not self._pressure or self.cost is None:
            return self._register(*first)
        limit = self.cost(self.best)
        draws = [first, *(self._draw() for _ in range(self.draws - 1))]
        cheaper = [d for d in draws if self.cost(d[0]) < limit]
        if not cheaper:
            return self._register(*first)
        return self._register(*cheaper[int(self._rng.integers(len(cheaper)))])

    def _next_budget_move(
        self, cost: Callable[[tuple[int, ...]], float], goal: float
    ) -> tuple[tuple[int, ...], list[np.ndarray]] | None:
        """The next move from the best, not asked yet, whose cost is at most ``goal`` (the
        moves are listed once per best; the goal may move as figures come in)."""
        if self._budget_key != self.best:
            self._budget_key = self.best
            self._budget_moves = self._budget_list(cost)
        for i, (value, move) in enumerate(self._budget_moves):
            if value <= goal:
                del self._budget_moves[i]
                return move
        return None

    def _budget_list(
        self, cost: Callable[[tuple[int, ...]], float]
    ) -> list[tuple[float, tuple[tuple[int, ...], list[np.ndarray]]]]:
        """(cost, move) for the single moves from the best that cut its cost, and for the
        pairs of the :attr:`PAIR_POOL` most cutting ones (a ResNet stage's channels are two
        positions: its inner convolution and the residual group), least drastic first: the
        smallest cut that meets the target is the likeliest to keep the accuracy. With a
        ``disruption`` (decisions -> how much of the model's function they replace), the least
        disruptive moves come first: pruning before swapping a convolution for a fresh one."""
        # Decisions at positions an edit made moot (the layers of a removed block) differ
        # without changing the model: one move per built model, by the space's plan key.
        plan = getattr(self.space, "plan", None)

        def identity(decisions: tuple[int, ...]) -> Any:
            return plan(decisions).key() if plan is not None else decisions

        base = cost(self.best)
        singles: dict[Any, tuple[float, int, int, Any]] = {}
        for t, size in enumerate(self.sizes):
            for choice in range(size):
                move = None if choice == self.best[t] else self._moved({t: choice})
                if move is not None and (value := cost(move[0])) < base:
                    singles.setdefault(identity(move[0]), (value, t, choice, move))
        found = {key: (s[0], s[3]) for key, s in singles.items()}
        cutting = sorted(singles.values(), key=lambda s: s[0])[: self.PAIR_POOL]
        for a, b in itertools.combinations(cutting, 2):
            move = None if a[1] == b[1] else self._moved({a[1]: a[2], b[1]: b[2]})
            if move is not None and (key := identity(move[0])) not in found:
                found[key] = (cost(move[0]), move)
        moves = list(found.values())
        disruption = self.disruption or (lambda decisions: 0.0)
        order = sorted(
            range(len(moves)), key=lambda i: (disruption(moves[i][1][0]), -moves[i][0], i)
        )
        return [moves[i] for i in order]

    def _moved(self, changes: dict[int, int]) -> tuple[tuple[int, ...], list[np.ndarray]] | None:
        """The best with ``changes`` ({position: choice}) made (None where one is not valid);
        a later position whose choice the changes made invalid falls back to its first valid
        one."""
        decisions: list[int] = []
        masks: list[np.ndarray] = []
        for t, size in enumerate(self.sizes):
            mask = _mask(self.space, decisions, size)
            want = changes.get(t, self.best[t])
            if not mask[want]:
                if t in changes:
                    return None
                want = int(np.flatnonzero(mask)[0])
            masks.append(mask)
            decisions.append(want)
        return tuple(decisions), masks

    def _begin(self) -> None:
        changeable = [t for t, n in enumerate(self.sizes) if n > 1]
        if not changeable:
            self._changing = frozenset()
            return
        count = int(self._rng.integers(1, min(self.moves, len(changeable)) + 1))
        self._changing = frozenset(
            int(t) for t in self._rng.choice(changeable, size=count, replace=False)
        )

    def _choose(self, prefix: Sequence[int], mask: np.ndarray) -> int:
        t = len(prefix)
        current = self.best[t]
        if t in self._changing:
            others = [c for c in np.flatnonzero(mask) if c != current]
            if others:
                return int(self._rng.choice(others))
        return current if mask[current] else int(np.flatnonzero(mask)[0])

    def _learn(self, decisions: tuple[int, ...], masks: list[np.ndarray], reward: float) -> None:
        if reward > self.best_reward:
            self.best, self.best_reward = tuple(decisions), reward


class ControllerRNN(_AskTell):
    """An LSTM policy over the decisions, trained with REINFORCE (NAS, ENAS).

    Position ``t`` feeds the LSTM the embedding of the decision taken at ``t - 1`` (a learned
    start token at ``t = 0``; a row per (position, choice), as a choice index means different
    things at different positions) and reads its choices' logits from its own dense head.
    Invalid choices get probability 0. The search edits a pre-trained model, so its first
    proposals should change a few layers, not every one: choice 0 ("keep the original") gets a
    fixed per-position prior logit that makes a first proposal change ``expected_edits``
    positions on average (default :func:`default_expected_edits`: a quarter of the positions,
    between 1 and 3, whatever the model's depth; counted as if every choice were valid, so
    masks make it a little fewer). The learned logits start at zero and move the policy away
    from "keep" only as rewards justify. As in ENAS the learned logits are soft-clipped to
    ``+-logit_bound`` (``b * tanh(logit / b)``), so no choice's probability collapses to 0
    after a few lucky trials and the policy keeps exploring; the prior is added after the clip.
    ``keep_bias`` (the earlier scheme: one learned "keep" logit for every position, inside the
    clip) replaces the prior when given; ``keep_bias=0`` starts uniform among the valid choices,
    like :class:`RandomSearch`.

    The weights live in numpy. Sampling runs the LSTM in numpy with a seeded generator (about a
    millisecond for 30 positions). A step recomputes the told decisions' log-probabilities
    under their stored masks (teacher forcing) in one TensorFlow graph, traced once per process
    and shared by every controller, and takes an Adam step on
    ``-mean((R - b) * sum_t log p(a_t)) + entropy_weight * mean(sum_t KL(p_t || q_t))``, where
    ``q_t`` is the prior alone (the "keep" logits: uniform without them, which makes the term
    the usual entropy bonus); ``b`` is an exponential moving average of the rewards
    (``baseline_decay``) starting at the first one. An entropy bonus proper pulled every
    position towards uniform whenever the rewards said little (Adam scales a small gradient up
    to a full step): on ResNet-8, 16 trials of small noisy rewards took the controller from 3
    edits a proposal to 16-20, further from the pre-trained model than its own prior or
    random search would go.

    The per-position head biases (an independent categorical per position) learn at
    ``bias_learning_rate``, ten times the rest: which choice suits which position is what the
    first tens of trials can teach, while the LSTM's interactions between positions need more
    data and, learned as fast, mostly add noise. ``elite`` > 0 adds priority-queue training
    (Abolafia et al., 2018): the ``elite`` best distinct proposals so far join every step that
    follows a new proposal's reward, with the fixed advantage ``elite_weight``, so the policy
    moves towards what already scores best instead of waiting for REINFORCE to tell it. ``batch_size`` told rewards make one step; the
    default, 1, steps on every tell because trials are expensive. Proposals asked before a step
    are told normally (slightly off-policy, like ENAS's asynchronous workers). The learning rates
    were tuned on the surrogate benchmark in ``tests/test_search_proposers.py`` (from a uniform
    start); on ResNet-8 from the few-edit prior, with the divergence in place of the entropy
    bonus, three seeds reached a median best reward of 0.44 in 16 trials, as the prior alone
    did (0.44; the entropy bonus: 0.17), far above random search (0.004) and below the local
    search (0.64): BENCHMARKS.md, ``search-proposers-resnet8``. With 48 trials it beat the
    prior on every seed (median 0.61 against 0.44, ``search-proposers-resnet8-48``). A ``keep_bias`` of 3
    (soft-clipped to 2.3, "keep" 9.8 times as likely as each other choice) changed about 2.6 of
    the digits CNN's 11 positions and took real digits searches (seeds 10-14) to the
    benchmark's target in a median 8 trials against 96 with 1.5; but the same bias changes 5 to
    21 of a ResNet's 35 positions, which is why the prior now scales with the depth.
    """

    def __init__(
        self,
        space: DecisionSpace,
        *,
        hidden_size: int = 32,
        embedding_size: int = 16,
        learning_rate: float = 0.05,
        bias_learning_rate: float = 0.5,
        baseline_decay: float = 0.5,
        entropy_weight: float = 0.03,
        temperature: float = 1.0,
        logit_bound: float | None = 3.0,
        keep_bias: float | None = None,
        expected_edits: float | None = None,
        batch_size: int = 1,
        elite: int = 0,
        elite_weight: float = 1.0,
        seed: int = 0,
        failure_reward: float = 0.0,
    ) -> None:
        super().__init__(space, seed, failure_reward)
        for name, value, low in (
            ("hidden_size", hidden_size, 1),
            ("embedding_size", embedding_size, 1),
            ("batch_size", batch_size, 1),
            ("elite", elite, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOptionError(f"{name} must be an int >= {low}, got {value!r}.")
        for name, number, rule, ok in (
            ("learning_rate", learning_rate, "> 0", lambda v: v > 0),
            ("bias_learning_rate", bias_learning_rate, ">= 0", lambda v: v >= 0),
            ("baseline_decay", baseline_decay, "in [0, 1)", lambda v: 0 <= v < 1),
            ("entropy_weight", entropy_weight, ">= 0", lambda v: v >= 0),
            ("elite_weight", elite_weight, ">= 0", lambda v: v >= 0),
            ("temperature", temperature, "> 0", lambda v: v > 0),
            ("keep_bias", 0.0 if keep_bias is None else keep_bias, ">= 0", lambda v: v >= 0),
            (
                "expected_edits",
                1.0 if expected_edits is None else expected_edits,
                "> 0",
                lambda v: v > 0,
            ),
            (
                "logit_bound",
                1.0 if logit_bound is None else logit_bound,
                "> 0 or None",
                lambda v: v > 0,
            ),
        ):
            if _bad(number) or not ok(number):
                raise InvalidOptionError(f"{name} must be a number {rule}, got {number!r}.")
        self.learning_rate = float(learning_rate)
        self.bias_learning_rate = float(bias_learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.temperature = float(temperature)
        self.logit_bound = None if logit_bound is None else float(logit_bound)
        self.batch_size = batch_size
        self.elite = elite
        self.elite_weight = float(elite_weight)
        # The best proposals told so far, best first: (reward, decisions, masks).
        self._elites: list[tuple[float, tuple[int, ...], list[np.ndarray]]] = []
        self._told: set[tuple[int, ...]] = set()
        self.baseline: float | None = None
        self.steps = 0
        steps, width, hid, emb = len(self.sizes), max(self.sizes), hidden_size, embedding_size
        # Its own stream, so the initial weights do not depend on how many proposals were asked.
        init = np.random.default_rng([self.seed, 7])

        def uniform(*shape: int) -> np.ndarray:
            return init.uniform(-0.1, 0.1, size=shape).astype(np.float32)

        lstm_bias = np.zeros(4 * hid, np.float32)
        lstm_bias[hid : 2 * hid] = 1.0  # forget gate open at the start, as usual for LSTMs
        # Every position's choices are padded to the widest; padded choices are always masked.
        self.params: dict[str, np.ndarray] = {
            "start": uniform(emb),
            "embedding": uniform(steps, width, emb),
            "lstm_kernel": uniform(emb + hid, 4 * hid),
            "lstm_bias": lstm_bias,
            "head_kernel": np.zeros((steps, hid, width), np.float32),
            "head_bias": np.zeros((steps, width), np.float32),
        }
        # Incremental edits of a pre-trained model: start preferring choice 0 ("keep") so the
        # first proposals change a few layers, not all of them at once. The prior is a fixed
        # offset outside the soft clip, so it can make "keep" as likely as a deep model needs;
        # the learned head bias moves away from it only as rewards justify.
        self.prior = np.zeros((steps, width), np.float32)
        if keep_bias is not None:
            self.params["head_bias"][:, 0] = keep_bias
            self.expected_edits = None
        else:
            self.expected_edits = (
                default_expected_edits(steps) if expected_edits is None else float(expected_edits)
            )
            self.prior[:, 0] = _keep_logits(self.sizes, self.expected_edits)
        self._moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in self.params.items()}
        self._batch: list[tuple[tuple[int, ...], list[np.ndarray], float]] = []

    # -- sampling (numpy) ---------------------------------------------------------------------

    def _begin(self) -> None:
        hid = self.params["lstm_bias"].shape[0] // 4
        self._state = (self.params["start"], np.zeros(hid), np.zeros(hid))

    def _probabilities(self, prefix: Sequence[int], mask: np.ndarray) -> np.ndarray:
        """Advance the LSTM to position ``len(prefix)``; its probabilities over the choices."""
        w, t = self.params, len(prefix)
        x, h, c = self._state
        z = np.concatenate([x, h]) @ w["lstm_kernel"] + w["lstm_bias"]
        i, f, g, o = np.split(z.astype(np.float64), 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        self._state = (x, h, c)
        n = mask.shape[0]
        logits = (h @ w["head_kernel"][t, :, :n] + w["head_bias"][t, :n]) / self.temperature
        if self.logit_bound is not None:
            logits = self.logit_bound * np.tanh(logits / self.logit_bound)
        logits = np.where(mask, logits + self.prior[t, :n], -np.inf)
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def _taken(self, prefix: Sequence[int], choice: int) -> int:
        _, h, c = self._state
        self._state = (self.params["embedding"][len(prefix), choice], h, c)
        return choice

    def _choose(self, prefix: Sequence[int], mask: np.ndarray) -> int:
        p = self._probabilities(prefix, mask)
        return self._taken(prefix, int(self._rng.choice(p.shape[0], p=p)))

    def most_likely(self) -> tuple[int, ...]:
        """The policy's most probable valid choice at each position (greedy, no sampling)."""
        decisions: list[int] = []
        self._begin()
        for size in self.sizes:
            p = self._probabilities(decisions, _mask(self.space, decisions, size))
            decisions.append(self._taken(decisions, int(np.argmax(p))))
        return tuple(decisions)

    # -- learning (TensorFlow gradient, numpy Adam) -------------------------------------------

    def _learn(self, decisions: tuple[int, ...], masks: list[np.ndarray], reward: float) -> None:
        self._batch.append((decisions, masks, reward))
        if len(self._batch) < self.batch_size:
            return
        rewards = np.array([r for _, _, r in self._batch])
        if self.baseline is None:
            self.baseline = float(rewards[0])
        advantages = list(rewards - self.baseline)
        rows = [(d, m) for d, m, _ in self._batch]
        if self.elite and self._remember(self._batch):
            # Priority-queue training (Abolafia et al., 2018): the best proposals so far are
            # trained on as if told a fixed advantage, which pulls the policy towards what
            # already works faster than the few, noisy REINFORCE rewards can. Only on news: a
            # repeat told again must not pull the policy further onto what it already repeats.
            rows += [(d, m) for _, d, m in self._elites]
            advantages += [self.elite_weight] * len(self._elites)
        padded = np.zeros((len(rows), len(self.sizes), max(self.sizes)), dtype=np.bool_)
        for b, (_, trial_masks) in enumerate(rows):
            for t, m in enumerate(trial_masks):
                padded[b, t, : m.shape[0]] = m
        _, grads = _policy_gradient(
            self.params,
            np.array([d for d, _ in rows], dtype=np.int32),
            padded,
            np.array(advantages, dtype=np.float32),
            np.float32(self.temperature),
            np.float32(self.logit_bound or 0.0),
            np.float32(self.entropy_weight),
            self.prior,
        )
        self._adam({k: v.numpy() for k, v in grads.items()})
        for r in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        self._batch.clear()

    def _remember(self, told: list[tuple[tuple[int, ...], list[np.ndarray], float]]) -> bool:
        """Keep the ``elite`` best distinct proposals (ties: the earlier stays first); whether
        any told proposal was new (never told before)."""
        fresh = []
        for decisions, masks, reward in told:
            if decisions not in self._told:
                self._told.add(decisions)
                fresh.append((reward, decisions, masks))
        ranked = sorted(self._elites + fresh, key=lambda e: -e[0])  # stable: earlier first
        self._elites = ranked[: self.elite]
        return bool(fresh)

    def _adam(self, grads: dict[str, np.ndarray]) -> None:
        """Adam (Kingma & Ba) with the usual betas, in numpy: exact and free of global state."""
        self.steps += 1
        beta1, beta2, eps = 0.9, 0.999, 1e-7
        correction = np.sqrt(1 - beta2**self.steps) / (1 - beta1**self.steps)
        for name, grad in grads.items():
            m, v = self._moments[name]
            m[...] = beta1 * m + (1 - beta1) * grad
            v[...] = beta2 * v + (1 - beta2) * grad * grad
            rate = self.bias_learning_rate if name == "head_bias" else self.learning_rate
            self.params[name] -= (rate * correction * m / (np.sqrt(v) + eps)).astype(np.float32)


def default_expected_edits(positions: int) -> float:
    """How many positions a first proposal changes on average: a quarter of the positions,
    between 1 and 3 (the digits CNN's 11 positions: 2.75; a ResNet's 35 or a MobileNet's
    114: 3). Published methods that work on real networks change a little at a time."""
    return float(np.clip(0.25 * positions, 1.0, 3.0))


def _keep_logits(sizes: Sequence[int], expected: float) -> np.ndarray:
    """Per position, the "keep" logit that makes its probability ``1 - expected / positions``
    when every other choice has logit 0 (a position with one choice needs none)."""
    change = min(expected / len(sizes), 0.999)
    others = np.maximum(np.asarray(sizes, np.float64) - 1.0, 1.0)
    logits = np.log((1.0 - change) / change * others)
    return np.where(np.asarray(sizes) > 1, logits, 0.0).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


_PARAMS = {
    "start": tf.TensorSpec([None], tf.float32),
    "embedding": tf.TensorSpec([None, None, None], tf.float32),
    "lstm_kernel": tf.TensorSpec([None, None], tf.float32),
    "lstm_bias": tf.TensorSpec([None], tf.float32),
    "head_kernel": tf.TensorSpec([None, None, None], tf.float32),
    "head_bias": tf.TensorSpec([None, None], tf.float32),
}


@tf.function(
    input_signature=[
        _PARAMS,
        tf.TensorSpec([None, None], tf.int32),  # decisions [batch, positions]
        tf.TensorSpec([None, None, None], tf.bool),  # masks [batch, positions, choices]
        tf.TensorSpec([None], tf.float32),  # advantages R - b
        tf.TensorSpec([], tf.float32),  # temperature
        tf.TensorSpec([], tf.float32),  # logit bound, 0 for none
        tf.TensorSpec([], tf.float32),  # entropy weight
        tf.TensorSpec([None, None], tf.float32),  # fixed prior [positions, choices]
    ]
)
def _policy_gradient(params, chosen, masks, advantages, temperature, bound, entropy_weight, prior):  # type: ignore[no-untyped-def]
    """The REINFORCE loss and its gradient. Every shape is dynamic, so this traces once."""
    with tf.GradientTape() as tape:
        tape.watch(params)
        batch, steps = tf.shape(chosen)[0], tf.shape(chosen)[1]
        hid = tf.shape(params["lstm_bias"])[0] // 4
        start = tf.tile(params["start"][None, None, :], [batch, 1, 1])
        position = tf.broadcast_to(tf.range(steps - 1)[None], [batch, steps - 1])
        previous = tf.gather_nd(params["embedding"], tf.stack([position, chosen[:, :-1]], -1))
        inputs = tf.transpose(tf.concat([start, previous], 1), [1, 0, 2])  # [T, B, E]

        def cell(t, h, c, hs):  # type: ignore[no-untyped-def]
            z = tf.matmul(tf.concat([inputs[t], h], 1), params["lstm_kernel"]) + params["lstm_bias"]
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, h, c, hs.write(t, h)

        zeros = tf.zeros([batch, hid])
        hs = tf.TensorArray(tf.float32, size=steps)
        _, _, _, hs = tf.while_loop(lambda t, *_: t < steps, cell, (0, zeros, zeros, hs))
        logits = tf.einsum("tbh,thc->btc", hs.stack(), params["head_kernel"]) + params["head_bias"]
        logits /= temperature
        safe = tf.where(bound > 0, bound, 1.0)  # no 0/0, even in the branch tf.where drops
        logits = tf.where(bound > 0, safe * tf.tanh(logits / safe), logits) + prior
        logp = tf.nn.log_softmax(tf.where(masks, logits, -1e9))
        # The divergence from the prior (its entropy when the prior is uniform): exploration
        # that stays near "change a few layers" instead of drifting towards uniform.
        logq = tf.nn.log_softmax(tf.where(masks, tf.broadcast_to(prior, tf.shape(logits)), -1e9))
        divergence = tf.reduce_sum(tf.where(masks, tf.exp(logp) * (logp - logq), 0.0), axis=[1, 2])
        log_prob = tf.reduce_sum(tf.gather(logp, chosen, batch_dims=2), axis=1)
        loss = -tf.reduce_mean(advantages * log_prob) + entropy_weight * tf.reduce_mean(divergence)
    return loss, tape.gradient(loss, params)
