"""The ``spec`` phi policy: every phi step rotates the unrotated (reference) lattice.

Step p orients the crystal by R(phi0 + phistep*p) about the spindle axis, whatever came
before: the physically correct behaviour.  (The reference C program instead skips the
rotation when the angle is exactly 0 and reuses the previous step's vectors; the
``c-parity`` policy reproduces that.)  The orientations are the same for every pass, so the
policy returns them once, broadcast over the chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from torch import Tensor

from nbsim.hookspecs import hookimpl
from nbsim.protocols import Passes
from nbsim.vectors import rotate_axis

__version__ = "0.1.0"


@attrs.frozen
class SpecPolicy:
    name: str = "spec"
    row_blocks: int = 1

    def configure(self, options: Mapping[str, Any]) -> "SpecPolicy":
        return self

    def shared_tables(self, base: Tensor, phi: Tensor, spindle: Tensor) -> Tensor:
        """One table (1, F, 3, 3): every pass gets the same orientations."""
        return rotate_axis(base[None, :, :], spindle, phi[:, None])[None]

    def orientations(self, base: Tensor, phi: Tensor, spindle: Tensor, passes: Passes) -> Tensor:
        return self.shared_tables(base, phi, spindle)


class SpecPlugin:
    @hookimpl
    def nbsim_register_phi_policies(self, register):
        register(SpecPolicy())


plugin = SpecPlugin()
