"""Losses: the operator vocabulary, expressions, their compiled torch form, export, baselines.

The bottom role above the shared ground. An expression is a DEAP tree over ``y`` (one-hot target)
and ``p`` (softmax output) printed in prefix form and parsed back by our own bounded parser
(:mod:`~nlfs.losses.expressions`); :mod:`~nlfs.losses.compile` turns it into a loss with
``F.cross_entropy``'s call signature; :mod:`~nlfs.losses.export` writes it as a standalone
PyTorch module or LaTeX; :mod:`~nlfs.losses.baselines` holds cross-entropy and the other named
losses. See docs/architecture.md.
"""

from nlfs.losses.baselines import ALIASES, BASELINES, Baseline, baseline, get_loss
from nlfs.losses.compile import ExpressionLoss, compile_elementwise
from nlfs.losses.expressions import ParseError, canonical, expression_key, parse
from nlfs.losses.operators import OPERATORS, primitive_set

__all__ = [
    "ALIASES",
    "BASELINES",
    "OPERATORS",
    "Baseline",
    "ExpressionLoss",
    "ParseError",
    "baseline",
    "canonical",
    "compile_elementwise",
    "expression_key",
    "get_loss",
    "parse",
    "primitive_set",
]
