"""The Strategy contract: what a search strategy offers the study runner, and the registry.

A strategy decides *what* to try; the study runner decides *when* and records; the evaluator
runs it. The runner drives a strategy through two public methods on :class:`Strategy`:

* :meth:`Strategy.ask` ``(n)`` returns ``n`` screened candidates. It may be called again before
  the earlier candidates have results (several asks outstanding, several workers).
* :meth:`Strategy.tell` ``(trials)`` hands over finished trials, ok, failed or pruned, as
  :class:`TrialRecord` objects rebuilt from storage. A failed, NaN or pruned trial is never a
  fitness.

Resume by replay: a strategy keeps no state that replaying the stored trials cannot rebuild.
The randomness of the k-th candidate ever asked (k counts from 0) comes only from
``numpy.random.SeedSequence([seed, k])``. After a crash the runner rebuilds the screen from the
stored expressions, builds the strategy with the same seed and options, calls
``tell(all finished trials in trial-number order)`` and sets :attr:`Strategy.asked` to the number
of candidates asked so far; the next ask is then the one the crashed run would have made.

A new strategy subclasses :class:`Strategy`, lists its options with their defaults in
``defaults`` and writes two hooks: ``_propose`` (one unscreened proposal) and ``_observe`` (one
finished trial). The base class does the bookkeeping: option checks, per-ask randomness,
screening and retries, history. Strategies are found through the entry-point group
``nlfs.strategies``, the built-ins the same way as a third-party package's.
"""

from __future__ import annotations

import math
import numbers
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nlfs.errors import ConfigError, NLFSError
from nlfs.evaluation.results import State
from nlfs.spaces.base import InvalidGenome

if TYPE_CHECKING:
    from nlfs.screening.screen import Screen
    from nlfs.spaces.base import SearchSpace

ENTRY_POINT_GROUP = "nlfs.strategies"
"""The entry-point group strategies are registered under (see pyproject.toml)."""

MAX_TRIES = 1000
"""Proposals one ask may draw before it gives up: screen rejections and invalid genomes count."""


@dataclass(frozen=True)
class Proposal:
    """What a strategy's ``_propose`` hook returns: a genome and how it came about.

    Attributes:
        genome: a genome of the strategy's space.
        parent: trial number of the parent, or None.
        mutation: the mutation's name, ``"random"``, ``"tpe"``, ...
        phase: ``"search"``, or ``"seed"`` for an initial pool the runner may score cheaper.
        params: strategy data the runner stores with the trial and returns in
            :attr:`TrialRecord.candidate` (JSON-serialisable values only).
    """

    genome: Any
    parent: int | None = None
    mutation: str | None = None
    phase: str = "search"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A screened proposal, ready for one trial.

    ``expression``, ``key`` and ``sign`` come from the screen's verdict; the rest from the
    proposal. The runner stores every field and rebuilds an equal candidate from storage.
    """

    genome: Any
    expression: str
    key: str
    sign: float
    parent: int | None = None
    mutation: str | None = None
    phase: str = "search"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as strategies see it, rebuilt from storage.

    A *pruned* trial (state ``State.PRUNED``: a pruning rule stopped it at a checkpoint
    because its accuracy was below its peers' at the same step, see
    :mod:`nlfs.search.pruning`) has no fitness. Its partial accuracy is a lower bound taken
    at a shorter horizon than every fitness, so it is not comparable with them: strategies
    treat a pruned trial as a distinct outcome, not a failure of training (regevo: it neither
    joins the population nor earns a re-mutation; random: ignored; TPE: Optuna's PRUNED,
    ranked below every completed trial by the step it reached, then its value there). Its
    curve and :attr:`partial` are on the record for strategies that want them.

    Attributes:
        number: the Optuna trial number.
        candidate: the candidate the trial evaluated.
        state: how the evaluation ended; only ``State.OK`` has a fitness.
        fitness: best validation accuracy, or None.
        curve: the learning curve as stored, ``(step, accuracy)`` points in step order (empty
            when the evaluation reported none).
    """

    number: int
    candidate: Candidate
    state: State
    fitness: float | None
    curve: tuple[tuple[int, float], ...] = ()

    @property
    def pruned(self) -> bool:
        """True when a pruning rule stopped the trial (no fitness; see the class docstring)."""
        return self.state is State.PRUNED

    @property
    def partial(self) -> float | None:
        """The best accuracy the curve reached (for a pruned trial: a lower bound), or None."""
        values = [v for _, v in self.curve if math.isfinite(v)]
        return max(values) if values else None

    @property
    def ok(self) -> bool:
        """True when the trial has a usable fitness: state ok and a finite number."""
        return (
            self.state is State.OK
            and isinstance(self.fitness, numbers.Real)
            and not isinstance(self.fitness, bool)
            and math.isfinite(self.fitness)
        )


def _check_option(strategy: str, name: str, value: Any, default: Any) -> Any:
    """``value`` if it has the type of ``default`` (an int is accepted for a float)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"strategy {strategy!r} option {name!r} must be {type(default).__name__}, got {value!r}"
        )
    return value


class Strategy(ABC):
    """Base of every search strategy: public ask/tell, two private hooks for subclasses.

    Args:
        space: the search space candidates come from.
        seed: the strategy's seed (a non-negative integer).
        screen: the screen every proposal must pass; a fresh ``Screen()`` when None. The runner
            passes one rebuilt from the stored expressions when it resumes.
        **options: the strategy's own options (see ``defaults``); an unknown name raises
            :class:`ConfigError` listing the valid ones.

    Attributes:
        asked: how many candidates this strategy has asked so far (the ``k`` of the next one).
            The runner sets it on resume.
        history: every told trial, in the order told.
        options: the options in effect, defaults filled in.
        unscreened: proposals rejected before the screen (the space raised InvalidGenome), by
            reason; rejections by the screen are counted in the screen.
        last_candidate: the candidate the latest ask returned (None before the first).
    """

    name: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}
    """Option names and their defaults; values given must have the default's type."""
    needs_encoding: ClassVar[bool] = False
    """True for strategies that work on the space's fixed-length ``encoding()``."""

    @classmethod
    def refusal(cls, space: SearchSpace) -> str | None:
        """Why this strategy cannot search ``space`` (one line naming the remedy), or None.

        The default refuses a space without an ``encoding()`` when :attr:`needs_encoding` is
        set; a strategy with other needs (a continuous encoding) overrides it.
        """
        if cls.needs_encoding and space.encoding() is None:
            label = getattr(cls, "name", cls.__name__)
            return (
                f"{label} needs a space with a fixed-length encoding; space {space.name!r} has "
                "none; use --space cell or --space taylor"
            )
        return None

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        screen: Screen | None = None,
        **options: Any,
    ) -> None:
        label = getattr(self, "name", type(self).__name__)
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for strategy {label!r}; "
                f"valid: {valid}"
            )
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"strategy seed must be a non-negative integer, got {seed!r}")
        refusal = self.refusal(space)
        if refusal is not None:
            raise ConfigError(refusal)
        self.options: dict[str, Any] = {
            key: _check_option(label, key, options.get(key, default), default)
            for key, default in self.defaults.items()
        }
        if screen is None:
            from nlfs.screening.screen import Screen

            screen = Screen()
        self.space = space
        self.seed = seed
        self.screen = screen
        self.asked = 0
        self.history: list[TrialRecord] = []
        self.unscreened: Counter[str] = Counter()
        self.last_candidate: Candidate | None = None
        self._told: set[int] = set()

    def _require(self, condition: bool, message: str) -> None:
        """Raise ConfigError(``message``) about this strategy's options unless ``condition``."""
        if not condition:
            raise ConfigError(f"strategy {self.name!r}: {message}")

    def rng_for(self, k: int) -> random.Random:
        """The random generator of the k-th ask: a function of ``(seed, k)`` only."""
        words = np.random.SeedSequence([self.seed, k]).generate_state(4)
        return random.Random(int.from_bytes(words.astype("<u4").tobytes(), "little"))

    def ask(self, n: int = 1) -> list[Candidate]:
        """Return ``n`` new candidates, each accepted (and recorded) by the screen.

        For each candidate, ``k = self.asked``: calls ``_propose(rng_for(k), k)`` until the
        screen accepts, then increments :attr:`asked`. Rejections are counted by the screen
        (or in :attr:`unscreened` when the space refuses the genome).

        Raises:
            NLFSError: no acceptable proposal after :data:`MAX_TRIES` tries (the space is
                exhausted or the screen rejects everything the strategy proposes).
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"ask needs a non-negative number of candidates, got {n!r}")
        return [self._ask_one() for _ in range(n)]

    def _ask_one(self) -> Candidate:
        k = self.asked
        rng = self.rng_for(k)
        for _ in range(MAX_TRIES):
            try:
                proposal = self._propose(rng, k)
                verdict = self.screen.check(self.space, proposal.genome, record=True)
            except InvalidGenome as exc:
                self.unscreened[exc.reason] += 1
                continue
            if verdict.accepted:
                self.asked = k + 1
                self.last_candidate = Candidate(
                    genome=proposal.genome,
                    expression=verdict.expression,
                    key=verdict.key,
                    sign=verdict.sign,
                    parent=proposal.parent,
                    mutation=proposal.mutation,
                    phase=proposal.phase,
                    params=dict(proposal.params),
                )
                return self.last_candidate
        raise NLFSError(
            f"strategy {self.name!r} found no acceptable candidate in {MAX_TRIES} tries "
            f"(ask #{k}); screen rejections so far: {dict(self.screen.counts)}; the space may "
            "be exhausted for this screen"
        )

    def tell(self, trials: Sequence[TrialRecord]) -> None:
        """Record finished trials in the order given and let the strategy observe each.

        A trial number already told is ignored, so overlapping batches are harmless. Failed
        and NaN trials are recorded; they never count as a fitness (see :attr:`TrialRecord.ok`).
        """
        for trial in trials:
            if trial.number in self._told:
                continue
            self._told.add(trial.number)
            self.history.append(trial)
            self._observe(trial)

    @abstractmethod
    def _propose(self, rng: random.Random, k: int) -> Proposal:
        """One unscreened proposal for the k-th candidate.

        Called by :meth:`ask`, repeatedly with the same ``rng`` and ``k`` while the screen
        rejects; the next call for a new ``k`` means the previous ``k``'s last proposal was
        accepted. Use only ``rng`` for randomness and only told trials for information. May
        raise :class:`InvalidGenome` (counted, then retried).
        """

    def _observe(self, trial: TrialRecord) -> None:  # noqa: B027 - optional hook
        """Update the strategy's state with one finished trial (default: nothing)."""


# --- registry -------------------------------------------------------------------------------


def _entry_points() -> dict[str, EntryPoint]:
    """The group's entry points by name; two with the same name (and target) are an error."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise NLFSError(
                f"two strategies are registered as {ep.name!r}: {_origin(other)} and "
                f"{_origin(ep)}; uninstall or rename one of them"
            )
        found[ep.name] = ep
    return found


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    package = f" (package {dist.name})" if dist is not None else ""
    return f"{ep.value!r}{package}"


def _load(ep: EntryPoint) -> type[Strategy]:
    try:
        cls = ep.load()
    except Exception as exc:
        raise NLFSError(
            f"strategy plugin {ep.name!r} from {_origin(ep)} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise NLFSError(
            f"strategy plugin {ep.name!r} from {_origin(ep)} is not a subclass of "
            "nlfs.search.strategy.Strategy"
        )
    return cls


def available_strategies() -> dict[str, type[Strategy]]:
    """Every registered strategy class by name (imports all of them)."""
    return {name: _load(ep) for name, ep in sorted(_entry_points().items())}


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``; unknown names list the known ones."""
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is nlfs installed?)"
        raise ConfigError(f"unknown strategy {name!r}; known: {known}")
    return _load(eps[name])
