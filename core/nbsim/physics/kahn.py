"""Kahn's polarization factor, written once for tensors and numbers (:mod:`.dual_math`).

The built-in ``kahn`` polarization model evaluates it on tensors and compiles it for the
numba engine (:mod:`nbsim.plugins.builtins.polarization`, ``polarization_forms``).
"""

from __future__ import annotations

from nbsim.physics.dual_math import formula, select
from nbsim.physics.vectors import cross3, dot3, unit3


@formula
def kahn_factor(incident, diffracted, axis, kahn, unpolarized):
    """Kahn's factor for unit incident and diffracted directions and the polarization ``axis``
    (triples, :mod:`nbsim.physics.dual_math`); ``unpolarized`` (K = 0, no gradient wanted) takes the
    reference's shortcut, which gives the same value."""
    c2 = dot3(incident, diffracted)
    c2sq = c2 * c2
    if unpolarized:
        return 0.5 * (1.0 + c2sq)  # the reference's K = 0 case (psi is never needed)
    b_in, _ = unit3(cross3(axis, incident))
    e_in, _ = unit3(cross3(incident, b_in))
    # psi = -atan2(B, E) of the reference, so cos(2 psi) = (E^2 - B^2)/(E^2 + B^2)
    # (1 where both are 0, as atan2(0, 0) = 0 gives)
    E, B = dot3(diffracted, e_in), dot3(diffracted, b_in)
    norm = E * E + B * B
    some = norm > 0.0
    cos2psi = select(some, (E * E - B * B) / select(some, norm, 1.0), 1.0)
    return 0.5 * (1.0 + c2sq - kahn * cos2psi * (1.0 - c2sq))
