"""Datasets: many images from one command line, rendered in one warm process.

:class:`~nbsim.datasets.plan.Series` and :class:`~nbsim.datasets.plan.Stills` say what image k
is; :mod:`nbsim.datasets.run` renders the missing ones into numbered files with a manifest and
the ground truth; :class:`~nbsim.datasets.torch_dataset.SimulatedImages` renders image k on
demand for training loops (``specs/datasets.md``, ``docs/datasets.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nbsim.datasets.plan import Series, Stills, typed_degrees
from nbsim.errors import UsageError
from nbsim.setup import config_from_argv
from nbsim.setup.state import RTD

__all__ = ["Series", "Stills", "plan_from_argv"]


def plan_from_argv(kind: str, argv: Sequence[str], options=None, *, seed: int = 0, frames: int | None = None,
                   count: int | None = None, energy_jitter: float = 0.0, size_jitter: float = 0.0,
                   warn: Callable[[str], None] = lambda text: None) -> Series | Stills:
    """The plan of ``nbsim series`` (``kind`` "series", ``frames``) or ``nbsim stills`` ("stills",
    ``count``) for a nanoBragg command line; ``options`` (RunOptions) name the structure and
    detector files."""
    from nbsim.setup import StructureInputs

    structure = getattr(options, "structure", StructureInputs())
    config = config_from_argv(argv, structure=structure, detector=getattr(options, "detector", None))
    for text in config.warnings:
        warn(text)
    if kind == "series":
        if config.sampling.osc <= 0.0:
            raise UsageError("--frames: a rotation series turns the crystal by -osc per frame; give -osc > 0")
        osc = typed_degrees(argv, "-osc", config.sampling.osc * RTD)
        return Series(base=config, frames=frames, seed=seed, phi0_degrees=typed_degrees(argv, "-phi", 0.0),
                      osc_degrees=osc)
    if (energy_jitter or size_jitter) and "-oversample" not in argv:
        raise UsageError("--energy-jitter and --size-jitter change what the automatic -oversample rule "
                         "picks: give -oversample N, so that every still is sampled alike")
    if size_jitter and any(flag in argv for flag in ("-xtalsize", "-xtal_size", "-samplesize", "-sample_size")):
        raise UsageError("--size-jitter varies the cell counts, and -xtalsize sets them from the crystal size")
    return Stills(base=config, count=count, seed=seed, energy_jitter=energy_jitter, size_jitter=size_jitter)
