"""Evaluation: training a network with a candidate loss and returning a result record.

The only role that touches the accelerator. :class:`Evaluator` is long-lived (data loaded once and
kept on the device, the model of a profile built once); a :class:`Profile` names every number of a
training recipe; :mod:`~nlfs.evaluation.training` is the training loop,
:mod:`~nlfs.evaluation.data`, :mod:`~nlfs.evaluation.augment` and :mod:`~nlfs.evaluation.models` its
inputs; :mod:`~nlfs.evaluation.results` the request and result records every other role speaks. See
docs/architecture.md.
"""

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest, EvalResult, State

__all__ = ["EvalRequest", "EvalResult", "Evaluator", "Profile", "State", "load_profile"]
