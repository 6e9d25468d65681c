"""Beam spectra: their intensity weights, their mean, and the SASE model of an XFEL pulse.

A spectrum (:class:`nbsim.model.config.Spectrum`) is the sources' dispersion axis; source s is
rendered as an equal-weight source would be, times w_s / mean(w), so that the image is the
weighted sum of single-wavelength images and the beam's fluence is the total
(``specs/inputs.md``).

SASE (self-amplified spontaneous emission) pulses are spiky: the textbook model of one shot is
a coherent sum of longitudinal modes with random phases, S(E) = |Σ_j exp(i φ_j) g(E − E_j)|²,
the modes' energies E_j drawn from the gain envelope (a Gaussian of the given relative FWHM)
and g a Gaussian whose intensity |g|² has FWHM = envelope FWHM / spikes (the inverse of the
pulse length: a pulse of ``spikes`` coherence lengths).  Averaged over shots the spectrum is
the envelope broadened by one spike's width, FWHM √(1 + 1/spikes²) times the envelope's; one
shot's weighted mean energy scatters about the envelope's centre by about σ/√spikes.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from nbsim.errors import UsageError

#: the reference program's photon energy times wavelength, eV Å (-energy E: lambda = 12398.42/E Å)
EV_ANGSTROM = 12398.42


def photon_wavelength(energy_eV):
    """The wavelength in metres of photons of ``energy_eV`` (a number or an array), as -energy converts."""
    return (EV_ANGSTROM / energy_eV) / 1.0e10

#: FWHM of a Gaussian over its standard deviation
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: the SASE grid's half width in envelope FWHMs (the envelope is 2e-3 of its peak there)
HALF_SPAN_FWHM = 1.5
#: energy bins per spike when none are asked for: about 2.7 bins across a spike's FWHM
BINS_PER_SPIKE = 8


def intensity_weights(weights: np.ndarray) -> np.ndarray | None:
    """Each line's weight over their mean (what a source is multiplied by), or None when they are
    all equal: then every source counts 1 and the render is the unweighted one, bit for bit."""
    weights = np.asarray(weights, dtype=np.float64)
    if np.all(weights == weights[0]):
        return None
    return weights / weights.mean()


def mean_wavelength(wavelengths: np.ndarray, weights: np.ndarray) -> float:
    """The weighted mean wavelength (the beam's wavelength); one wavelength is itself exactly."""
    if np.all(wavelengths == wavelengths[0]):
        return float(wavelengths[0])
    return float(np.sum(weights * wavelengths) / np.sum(weights))


@attrs.frozen
class SaseSpec:
    """``--sase MEAN_EV:BANDWIDTH:SPIKES[:BINS]``: envelope centre (eV), its FWHM relative to the
    centre, the number of modes, and the number of energies the spectrum is sampled at."""

    mean_energy_eV: float
    bandwidth: float
    spikes: int
    bins: int

    @classmethod
    def parse(cls, text: str, flag: str = "--sase") -> SaseSpec:
        usage = f"{flag}: expected MEAN_EV:BANDWIDTH:SPIKES[:BINS] (such as 9500:0.003:20), got {text!r}"
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise UsageError(usage)
        try:
            mean, bandwidth = float(parts[0]), float(parts[1])
            spikes = int(parts[2])
            bins = int(parts[3]) if len(parts) == 4 else BINS_PER_SPIKE * spikes
        except ValueError:
            raise UsageError(usage) from None
        if not (math.isfinite(mean) and mean > 0):
            raise UsageError(f"{flag}: the mean energy must be positive (eV), got {parts[0]}")
        if not 0 < bandwidth < 1 / HALF_SPAN_FWHM:  # the grid's lowest energy stays positive
            raise UsageError(f"{flag}: the bandwidth (relative FWHM) must lie in (0, {1 / HALF_SPAN_FWHM:.3g}), "
                             f"got {parts[1]}")
        if spikes < 1 or bins < 1:
            raise UsageError(f"{flag}: SPIKES and BINS must be at least 1, got {spikes} and {bins}")
        return cls(mean, bandwidth, spikes, bins)

    @property
    def text(self) -> str:
        """The option's value, reading back as the same numbers."""
        return f"{self.mean_energy_eV!r}:{self.bandwidth!r}:{self.spikes}:{self.bins}"

    def with_mean(self, mean_energy_eV: float) -> SaseSpec:
        return attrs.evolve(self, mean_energy_eV=mean_energy_eV)


def sase_spectrum(mean_energy_eV: float, bandwidth: float, spikes: int, n_bins: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One SASE shot (see the module docstring): ``n_bins`` energies (eV) evenly spaced over the
    envelope centre ± 1.5 FWHM, and the spectrum's intensity at each (peak 1).

    ``rng`` draws the modes' energies (``spikes`` normal draws), then their phases (``spikes``
    uniform draws in [0, 2π)): a generator of the same seed gives the same shot.
    """
    fwhm = bandwidth * mean_energy_eV
    envelope_sigma = fwhm / FWHM_PER_SIGMA
    spike_sigma = envelope_sigma / spikes  # of a mode's intensity |g|^2; its amplitude g is √2 wider
    offsets = np.linspace(-HALF_SPAN_FWHM, HALF_SPAN_FWHM, n_bins) if n_bins > 1 else np.zeros(1)
    energies = mean_energy_eV + fwhm * offsets
    centres = rng.normal(mean_energy_eV, envelope_sigma, spikes)
    phases = rng.uniform(0.0, 2.0 * math.pi, spikes)
    amplitude = np.exp(-np.square(energies[:, None] - centres) / (4.0 * spike_sigma ** 2)) @ np.exp(1j * phases)
    intensity = np.square(amplitude.real) + np.square(amplitude.imag)
    if not intensity.max() > 0:
        raise UsageError(f"--sase: {n_bins} energies miss every one of the {spikes} spikes: give more BINS")
    return energies, intensity / intensity.max()
