"""The ``spec`` phi policy: every phi step rotates the unrotated (reference) lattice.

Step p orients the crystal by R(phi0 + phistep*p) about the spindle axis, whatever came
before: the physically correct behaviour.  (The reference C program instead skips the
rotation when the angle is exactly 0 and reuses the previous step's vectors; the
``c-parity`` policy reproduces that.)  The orientations are the same for every pass, so the
policy returns them once, broadcast over the chunk.
"""

from __future__ import annotations

import attrs
from torch import Tensor

from nbsim import hookimpl
from nbsim.physics.vectors import rotate_axis
from nbsim.protocols import Passes, PhiPolicy

__version__ = "0.1.0"


@attrs.frozen
class SpecPolicy(PhiPolicy):
    name: str = "spec"
    row_blocks: int = 1

    def shared_tables(self, base: Tensor, phi: Tensor, spindle: Tensor) -> Tensor:
        """One table (1, F, 3, 3): every pass gets the same orientations."""
        return rotate_axis(base[None, :, :], spindle, phi[:, None])[None]

    def orientations(self, base: Tensor, phi: Tensor, spindle: Tensor, passes: Passes) -> Tensor:
        return self.shared_tables(base, phi, spindle)


class SpecPlugin:
    plugin_name = "phi-spec"  # its entry point's name, also when registered as an object

    @hookimpl
    def nbsim_register_phi_policies(self, register):
        register(SpecPolicy())


plugin = SpecPlugin()
