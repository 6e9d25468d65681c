"""The beam's spectrum from nbsim's options: ``--spectrum FILE`` or ``--sase SPEC --sase-seed N``.

A spectrum stands for the nanoBragg flags that give the wavelengths (``-lambda``, ``-energy``,
``-dispersion``, ``-dispsteps``, ``-sourcefile``: a usage error beside it); its weighted mean
wavelength is the beam's wavelength for everything else (the automatic oversampling, a
``-mat`` file's scale, the resolution of the detector's corners, ``--anomalous``).  With
divergence, each divergence grid point gets every wavelength of the spectrum, as it would
every wavelength of a dispersion (``specs/inputs.md``).
"""

from __future__ import annotations

from collections.abc import Collection

import attrs
import numpy as np

from nbsim.errors import UsageError
from nbsim.io import spectrum as spectrum_file
from nbsim.model.config import Spectrum
from nbsim.model.spectra import SaseSpec, photon_wavelength, sase_spectrum

#: the nanoBragg flags a spectrum stands for
REPLACED_FLAGS = ("-lambda", "-energy", "-dispersion", "-dispsteps", "-sourcefile")


@attrs.frozen
class SpectrumInputs:
    """The spectrum options: ``file`` (--spectrum), or ``sase`` (--sase) with ``sase_seed`` (--sase-seed, default 0)."""

    file: str | None = None
    sase: str | None = None
    sase_seed: int | None = None

    def option(self) -> str | None:
        """The option that gives the spectrum, or None."""
        return "--spectrum" if self.file is not None else "--sase" if self.sase is not None else None


def spectrum_of_file(path: str) -> Spectrum:
    table = spectrum_file.read(path)
    if table.unit == "energy_eV":
        wavelengths = photon_wavelength(table.values)
    else:
        wavelengths = table.values / 1.0e10  # Å, as -lambda reads them
    return Spectrum(wavelengths=wavelengths, weights=table.weights, origin=path)


def sase_shot(spec: SaseSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The energies (eV) and weights of the SASE shot ``--sase spec.text --sase-seed seed``: drawn
    from numpy's generator seeded by ``seed``."""
    return sase_spectrum(spec.mean_energy_eV, spec.bandwidth, spec.spikes, spec.bins, np.random.default_rng(seed))


def spectrum_of_sase(spec: SaseSpec, seed: int) -> Spectrum:
    energies, weights = sase_shot(spec, seed)
    return Spectrum(wavelengths=photon_wavelength(energies), weights=weights,
                    origin=f"--sase {spec.text} --sase-seed {seed}")


def spectrum_of(inputs: SpectrumInputs, typed: Collection[str]) -> Spectrum | None:
    """The spectrum the options give (None without one); ``typed``: the nanoBragg flags on the line."""
    option = inputs.option()
    if inputs.file is not None and inputs.sase is not None:
        raise UsageError("--spectrum and --sase both give the beam's spectrum: use one")
    if inputs.sase_seed is not None and inputs.sase is None:
        raise UsageError("--sase-seed seeds a --sase spectrum, and --sase is not given")
    if option is None:
        return None
    replaced = [flag for flag in REPLACED_FLAGS if flag in typed]
    if replaced:
        raise UsageError(f"{option} gives the beam's wavelengths: remove {', '.join(replaced)} (its weighted mean "
                         "wavelength is the beam's wavelength)")
    if inputs.file is not None:
        return spectrum_of_file(inputs.file)
    return spectrum_of_sase(SaseSpec.parse(inputs.sase), inputs.sase_seed or 0)
