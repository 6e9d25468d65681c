"""Fitting a model's parameters to an observed image (``nbsim refine``, ``docs/refinement.md``).

:mod:`~nbsim.refine.parameters` (names, units, the optimizer's coordinates),
:mod:`~nbsim.refine.observed` (the image), :mod:`~nbsim.refine.spots` and
:mod:`~nbsim.refine.spot_fit` (the coarse stage on spot positions),
:mod:`~nbsim.refine.refinement` (the stages, the pixel loss, the result).
"""

from nbsim.refine.observed import Observation, read_observed
from nbsim.refine.parameters import INERT_HINTS, UNITS, Unit
from nbsim.refine.refinement import Refinement, RefineResult

__all__ = ["INERT_HINTS", "UNITS", "Observation", "RefineResult", "Refinement", "Unit", "read_observed"]
