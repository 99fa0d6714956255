"""Screening: cheap CPU checks that reject hopeless or duplicate candidates before training.

:class:`Screen` runs the checks in order and records why each rejected candidate was rejected;
:mod:`~nlfs.screening.probe` evaluates an expression on the probe grids (finiteness, the paper's
two-class curve, the duplicate fingerprint); :func:`loss_from_spec` turns what a user types (a
baseline name or an expression) into a loss module signed by the screen. See
docs/architecture.md.
"""

from nlfs.screening import probe
from nlfs.screening.screen import FingerprintIndex, Reason, Screen, Verdict
from nlfs.screening.specs import loss_from_spec

__all__ = ["FingerprintIndex", "Reason", "Screen", "Verdict", "loss_from_spec", "probe"]
