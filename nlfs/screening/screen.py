"""Screening before training: cheap checks that reject hopeless or duplicate candidates.

Checks, in order, each rejection counted under its :class:`Reason`:

1. the expression uses both ``y`` and ``p`` (``missing_y``, ``missing_p``);
2. the genome is valid in its space, e.g. its active graph is acyclic (``cyclic``, ``too_deep``,
   ``too_large``, ``not_representable``, ``invalid``; reported by ``space.validate``);
3. the expression is finite on the probe (``non_finite``), see :mod:`nlfs.screening.probe`;
4. the two-class probe curve is not constant (``constant``), has at most 10 flat steps
   (``flat``) and is monotone or turns once away from q = 0.5 (``bad_shape``); the sign is fixed
   so the loss falls as the true-class probability rises;
5. not a duplicate: the same canonical string as one seen before (``duplicate``), or a probe
   fingerprint within L2 distance ``tolerance`` of one seen before (``duplicate_curve``).

"Seen" means accepted with ``record=True`` or marked with :meth:`Screen.add`; a :class:`Screen`
can be rebuilt from the expressions of stored trials with :meth:`Screen.rebuild`.

Reference: Morgan & Hougen, arXiv 2403.08793 (2024), section 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from deap import gp

from nlfs.losses.expressions import canonical, expression_key, parse, terminals_used
from nlfs.screening import probe
from nlfs.spaces.base import Genome, InvalidGenome, SearchSpace


class Reason(StrEnum):
    """Why a candidate was accepted or rejected; the values are what users see in counts."""

    OK = "ok"
    MISSING_Y = "missing_y"
    MISSING_P = "missing_p"
    CYCLIC = "cyclic"
    TOO_DEEP = "too_deep"
    TOO_LARGE = "too_large"
    NOT_REPRESENTABLE = "not_representable"
    """The expression cannot be written as a genome of the space (``space check --space``)."""
    INVALID = "invalid"
    NON_FINITE = "non_finite"
    """A probe value is NaN, infinite or at the operators' +-1e30 clamp."""
    CONSTANT = "constant"
    """The probe curve does not change at all."""
    FLAT = "flat"
    """More than 10 flat steps on the probe curve (see :data:`nlfs.screening.probe.FLAT_RTOL`)."""
    SHAPE = "bad_shape"
    """More than one turning point, or one within +-0.01 of q = 0.5."""
    DUPLICATE = "duplicate"
    DUPLICATE_CURVE = "duplicate_curve"


@dataclass(frozen=True)
class Verdict:
    """The outcome of screening one candidate.

    Attributes:
        accepted: whether the candidate passed every check.
        reason: ``"ok"`` or the :class:`Reason` value of the first failed check.
        expression: the canonical expression (``""`` when the genome has none, e.g. cyclic).
        key: the stable key of ``expression`` (``""`` when there is none).
        sign: +1.0 or -1.0 so the signed loss falls as the true-class probability rises
            (+1.0 when the candidate failed before the sign was known).
    """

    accepted: bool
    reason: str
    expression: str
    key: str
    sign: float


@dataclass(frozen=True)
class _ProbeOutcome:
    reason: str
    sign: float
    fingerprint: np.ndarray | None


class FingerprintIndex:
    """Fingerprints in a growing matrix, with a block-sum sketch to prune distance checks.

    The sketch sums each block of :data:`BLOCK` coordinates and divides by ``sqrt(BLOCK)``: an
    orthogonal projection, so the sketch distance never exceeds the full distance and rows whose
    sketch is farther than the tolerance are skipped exactly, without computing the full distance.
    """

    BLOCK = 50

    def __init__(self, dim: int = 2 * probe.CURVE_POINTS) -> None:
        if dim % self.BLOCK:
            raise ValueError(f"fingerprint length {dim} is not a multiple of {self.BLOCK}")
        self._full = np.empty((64, dim), dtype=np.float32)
        self._sketch = np.empty((64, dim // self.BLOCK), dtype=np.float64)
        self._sketch_sq = np.empty(64, dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _sketch_of(self, fp: np.ndarray) -> np.ndarray:
        return fp.astype(np.float64).reshape(-1, self.BLOCK).sum(axis=1) / np.sqrt(self.BLOCK)

    def add(self, fp: np.ndarray) -> None:
        """Store one fingerprint."""
        if self._n == len(self._full):
            self._full = np.concatenate([self._full, np.empty_like(self._full)])
            self._sketch = np.concatenate([self._sketch, np.empty_like(self._sketch)])
            self._sketch_sq = np.concatenate([self._sketch_sq, np.empty_like(self._sketch_sq)])
        sketch = self._sketch_of(fp)
        self._full[self._n] = fp
        self._sketch[self._n] = sketch
        self._sketch_sq[self._n] = sketch @ sketch
        self._n += 1

    def within(self, fp: np.ndarray, tolerance: float) -> bool:
        """Whether a stored fingerprint lies within L2 distance ``tolerance`` of ``fp``."""
        if self._n == 0:
            return False
        sketch = self._sketch_of(fp)
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2: one matrix-vector product over the archive. The
        # slack covers its rounding and the float32 storage, so pruning never drops a true
        # neighbour; the survivors are then measured exactly.
        dist_sq = self._sketch_sq[: self._n] - 2.0 * (self._sketch[: self._n] @ sketch)
        dist_sq += sketch @ sketch
        slack = (tolerance + 1e-4) ** 2 + 1e-9 * (1.0 + sketch @ sketch)
        near = np.flatnonzero(dist_sq <= slack)
        if len(near) == 0:
            return False
        full = self._full[near].astype(np.float64) - fp.astype(np.float64)
        return bool(np.any(np.einsum("ij,ij->i", full, full) <= tolerance * tolerance))


class Screen:
    """Screens candidates and remembers the accepted ones to reject duplicates.

    Every check counts its rejection in :attr:`counts`, whether or not it records; only
    ``record=True`` acceptances (and :meth:`add`) grow the archive.

    Args:
        tolerance: Euclidean distance between probe fingerprints (the 1000-point min-max
            normalised signed curve and its 1000-point normalised gradient, concatenated) at or
            under which two losses count as the same; default 0.01, the paper's threshold.
        dedupe: whether to reject duplicates at all; with ``dedupe=False`` the screen keeps no
            archive (used to find the sign of a single expression).
    """

    _CACHE_LIMIT = 100_000
    """Most probe outcomes kept by canonical string before the cache is cleared."""

    def __init__(self, tolerance: float = 0.01, dedupe: bool = True) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.dedupe = dedupe
        self._seen: set[str] = set()
        self._index = FingerprintIndex()
        self._counts: dict[str, int] = {}
        self._accepted = 0
        # Search strategies re-propose the same expressions often; the probe is deterministic.
        self._cache: dict[str, _ProbeOutcome] = {}

    @property
    def counts(self) -> dict[str, int]:
        """Rejections so far by reason (a copy)."""
        return dict(self._counts)

    @property
    def accepted(self) -> int:
        """Number of candidates accepted so far."""
        return self._accepted

    def __len__(self) -> int:
        """Number of distinct expressions in the archive."""
        return len(self._seen)

    def check(self, space: SearchSpace, genome: Genome, *, record: bool = True) -> Verdict:
        """Screen a genome of ``space``: validate it, then screen its expression.

        ``InvalidGenome.reason`` from ``space.validate`` becomes the rejection reason.
        """
        try:
            space.validate(genome)
        except InvalidGenome as err:
            return self._reject(str(err.reason), _text_of(space, genome))
        return self.check_tree(space.expression(genome), record=record)

    def check_tree(self, tree_or_text: gp.PrimitiveTree | str, *, record: bool = True) -> Verdict:
        """Screen an expression given as a tree or as text.

        Raises:
            ParseError: when ``tree_or_text`` is text that does not parse.
        """
        tree = parse(tree_or_text) if isinstance(tree_or_text, str) else tree_or_text
        text = canonical(tree)
        used = terminals_used(tree)
        if "y" not in used:
            return self._reject(Reason.MISSING_Y, text)
        if "p" not in used:
            return self._reject(Reason.MISSING_P, text)
        outcome = self._probe(text, tree)
        if outcome.reason != Reason.OK:
            return self._reject(outcome.reason, text)
        if self.dedupe:
            if text in self._seen:
                return self._reject(Reason.DUPLICATE, text, outcome.sign)
            if self._index.within(outcome.fingerprint, self.tolerance):
                return self._reject(Reason.DUPLICATE_CURVE, text, outcome.sign)
            if record:
                self._remember(text, outcome)
        self._accepted += 1
        return Verdict(True, Reason.OK.value, text, expression_key(text), outcome.sign)

    def add(self, expression: str) -> None:
        """Mark an already-evaluated expression as seen, so it and its curve count as duplicates.

        Its fingerprint is stored only when its probe passes (expressions that fail the probe
        have no meaningful curve); its canonical string is stored always.

        Raises:
            ParseError: when ``expression`` does not parse.
        """
        tree = parse(expression)
        text = canonical(tree)
        if text in self._seen:
            return
        self._remember(text, self._probe(text, tree))

    @classmethod
    def rebuild(cls, expressions: Iterable[str], **options) -> Screen:
        """A screen whose archive holds ``expressions`` (e.g. those of stored trials), in order."""
        screen = cls(**options)
        for expression in expressions:
            screen.add(expression)
        return screen

    def _remember(self, text: str, outcome: _ProbeOutcome) -> None:
        self._seen.add(text)
        if outcome.reason == Reason.OK:
            self._index.add(outcome.fingerprint)

    def _reject(self, reason: str, text: str, sign: float = 1.0) -> Verdict:
        reason = str(getattr(reason, "value", reason))
        self._counts[reason] = self._counts.get(reason, 0) + 1
        key = expression_key(text) if text else ""
        return Verdict(False, reason, text, key, sign)

    def _probe(self, text: str, tree: gp.PrimitiveTree) -> _ProbeOutcome:
        outcome = self._cache.get(text)
        if outcome is None:
            outcome = _run_probe(tree)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = outcome
        return outcome


def _text_of(space: SearchSpace, genome: Genome) -> str:
    """The canonical text of an invalid genome where it has one (a cyclic one has none)."""
    try:
        return space.canonical(genome)
    except (ValueError, LookupError, TypeError, AttributeError):  # InvalidGenome is a ValueError
        return ""


def _run_probe(tree: gp.PrimitiveTree) -> _ProbeOutcome:
    values = probe.evaluate(tree)
    if not probe.finite(values):
        return _ProbeOutcome(Reason.NON_FINITE.value, 1.0, None)
    loss = probe.curve(values)
    shape = probe.analyse_curve(loss)
    if shape.problem:
        return _ProbeOutcome(shape.problem, 1.0, None)
    return _ProbeOutcome(Reason.OK.value, shape.sign, probe.fingerprint(loss, shape.sign))
