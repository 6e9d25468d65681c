"""Datasets: many images from one command line, rendered in one warm process.

:class:`~nbsim.datasets.plan.Series` and :class:`~nbsim.datasets.plan.Stills` say what image k
is; :mod:`nbsim.datasets.run` renders the missing ones into numbered files with a manifest and
the ground truth; :class:`~nbsim.datasets.torch_dataset.SimulatedImages` renders image k on
demand for training loops (``specs/datasets.md``, ``docs/datasets.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nbsim.datasets.plan import SPECTRUM, Series, Stills, derived_seed, typed_degrees
from nbsim.errors import UsageError
from nbsim.setup import config_from_argv
from nbsim.setup.state import RTD

__all__ = ["Series", "Stills", "plan_from_argv"]


def plan_from_argv(kind: str, argv: Sequence[str], options=None, *, seed: int = 0, frames: int | None = None,
                   count: int | None = None, energy_jitter: float = 0.0, size_jitter: float = 0.0,
                   warn: Callable[[str], None] = lambda text: None) -> Series | Stills:
    """The plan of ``nbsim series`` (``kind`` "series", ``frames``) or ``nbsim stills`` ("stills",
    ``count``) for a nanoBragg command line; ``options`` (RunOptions) name the structure and
    detector files and the spectrum (a ``--sase`` of stills: each still its own shot)."""
    from nbsim.model.spectra import SaseSpec
    from nbsim.setup import SpectrumInputs, StructureInputs

    structure = getattr(options, "structure", StructureInputs())
    spectrum = getattr(options, "spectrum", SpectrumInputs())
    sase = None
    if spectrum.sase is not None:
        if kind != "stills":
            raise UsageError("--sase: each still has its own shot; a series takes a --spectrum FILE")
        if spectrum.sase_seed is not None:
            raise UsageError("--sase-seed: each still's shot is drawn from (--seed, k)")
        sase = SaseSpec.parse(spectrum.sase)
        # the set-up of still 0's shot: every still's flags are checked as `nbsim run` checks them
        spectrum = SpectrumInputs(sase=sase.text, sase_seed=derived_seed(seed, 0, SPECTRUM))
    config = config_from_argv(argv, structure=structure, detector=getattr(options, "detector", None),
                              spectrum=spectrum)
    for text in config.warnings:
        warn(text)
    if kind == "series":
        if config.sampling.osc <= 0.0:
            raise UsageError("--frames: a rotation series turns the crystal by -osc per frame; give -osc > 0")
        osc = typed_degrees(argv, "-osc", config.sampling.osc * RTD)
        return Series(base=config, frames=frames, seed=seed, phi0_degrees=typed_degrees(argv, "-phi", 0.0),
                      osc_degrees=osc)
    if (energy_jitter or size_jitter or sase) and "-oversample" not in argv:
        raise UsageError("--energy-jitter, --size-jitter and --sase change what the automatic -oversample rule "
                         "picks: give -oversample N, so that every still is sampled alike")
    if energy_jitter and spectrum.file is not None:
        raise UsageError("--energy-jitter moves -lambda, which --spectrum replaces: use --sase for shots of "
                         "their own (their mean energy jittered)")
    if size_jitter and any(flag in argv for flag in ("-xtalsize", "-xtal_size", "-samplesize", "-sample_size")):
        raise UsageError("--size-jitter varies the cell counts, and -xtalsize sets them from the crystal size")
    return Stills(base=config, count=count, seed=seed, energy_jitter=energy_jitter, size_jitter=size_jitter,
                  sase=sase)
