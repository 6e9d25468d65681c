"""The ``c-parity`` phi policy: nanoBragg's phi = 0 carry-over, reproduced exactly.

Inside its phi loop the reference C program recomputes the working lattice vectors only when
the angle ``phi0 + phistep*p`` is not exactly 0.0; a step at exactly 0 reuses the vectors of
the most recent rotation its thread performed.  Since every executed pass (pixel, layer,
sub-pixel, source) runs all phi steps in order, that state depends only on the sequence of
angles, never on the pixel: after any complete pass it is the rotation of the last non-zero
step.  A zero step therefore sees

* the latest non-zero step before it in the same pass, if there is one;
* otherwise, in the first pass its thread executes, the unrotated lattice;
* otherwise the last non-zero step of the sequence.

The only pixel-dependent fact is whether a pass is the first its OpenMP thread executes.  The
reference splits detector rows into ``--c-threads`` contiguous blocks (static schedule, the
first ``rows mod N`` blocks one row longer); the pipeline tells the policy, through
:class:`nbsim.protocols.Passes`, each pass's position and block and the first executed pass
of every block.  So the policy needs no per-pixel cache: its memory is O(phi steps) for the
orientation tables, plus one selection per pass only when a zero step makes the first pass of
a block differ from the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from torch import Tensor

from nbsim import hookimpl
from nbsim.errors import UsageError
from nbsim.physics.vectors import rotate_axis
from nbsim.protocols import Passes, PhiPolicy

__version__ = "0.1.0"

THREADS_OPTION = "--c-threads"


def _positive_threads(instance, attribute, value):
    if not isinstance(value, int) or value < 1:
        raise UsageError(f"{THREADS_OPTION} must be at least 1, got {value!r}")


@attrs.frozen
class CParityPolicy(PhiPolicy):
    """The reference program's phi stepping, for ``threads`` OpenMP threads."""

    threads: int = attrs.field(default=1, validator=_positive_threads)
    name: str = "c-parity"

    @property
    def row_blocks(self) -> int:
        return self.threads

    def configure(self, options: Mapping[str, Any]) -> "CParityPolicy":
        threads = options.get("threads")
        return self if threads is None else attrs.evolve(self, threads=threads)

    def tables(self, base: Tensor, phi: Tensor, spindle: Tensor) -> tuple[Tensor, Tensor]:
        """(first-pass table, later-pass table), each (F, 3, 3): the vectors every step uses."""
        F = phi.shape[0]
        rotated = rotate_axis(base[None, :, :], spindle, phi[:, None])  # (F, 3, 3)
        steps = torch.arange(F, device=phi.device)
        nonzero = phi != 0.0
        latest = torch.cummax(torch.where(nonzero, steps, torch.full_like(steps, -1)), dim=0).values
        last = latest[-1]
        # index F stands for the unrotated lattice
        table = torch.cat((rotated, base[None]), dim=0)
        first_src = torch.where(latest >= 0, latest, torch.full_like(latest, F))
        later_src = torch.where(latest >= 0, latest, torch.where(last >= 0, last, torch.full_like(latest, F)))
        return table[first_src], table[later_src]

    def shared_tables(self, base: Tensor, phi: Tensor, spindle: Tensor) -> Tensor:
        """(2, F, 3, 3) [later passes, a block's first executed pass], or (1, F, 3, 3) when they agree."""
        first, later = self.tables(base, phi, spindle)
        return later[None] if bool(torch.equal(first, later)) else torch.stack((later, first))

    def orientations(self, base: Tensor, phi: Tensor, spindle: Tensor, passes: Passes) -> Tensor:
        tables = self.shared_tables(base, phi, spindle)
        if tables.shape[0] == 1:
            return tables
        is_first = passes.first_in_block & passes.executed
        return torch.where(is_first[:, None, None, None], tables[1][None], tables[0][None])


class CParityPlugin:
    plugin_name = "phi-c-parity"  # its entry point's name, also when registered as an object

    @hookimpl
    def nbsim_register_phi_policies(self, register):
        register(CParityPolicy())

    @hookimpl
    def nbsim_register_options(self, register):
        register(THREADS_OPTION, keyword="threads", type=int, default=1, owner="c-parity",
                 help="OpenMP thread count of the reference run to reproduce (its rows split into this many blocks)")


plugin = CParityPlugin()
