"""What each image of a dataset is: a rotation series' frames, or stills of random orientation.

A plan turns one resolved command line into the configuration of image k, and says which
nanoBragg flags render that image alone (``reproduce``): image k of a dataset is the image
of ``nbsim run <the command line> <reproduce(k)>``, which the tests check.  Everything random
about image k is drawn from generators seeded by (seed, k, what), so that any image can be
made alone, in any order, on any worker (``specs/datasets.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from nbsim.model.config import RunConfig, Spectrum
from nbsim.model.spectra import SaseSpec, mean_wavelength
from nbsim.physics import rng
from nbsim.physics.vectors import rotate_xyz
from nbsim.setup.spectrum import sase_shot, spectrum_of_sase
from nbsim.setup.state import RTD

#: the streams of a (seed, k) pair: one generator per purpose, so adding one changes no other
ORIENTATION, NOISE, MOSAIC, ENERGY, SIZE, SPECTRUM = range(6)
#: seeds handed to nanoBragg's flags stay in its positive int range
SEED_LIMIT = 2**31 - 1


def derived_seed(seed: int, index: int, purpose: int) -> int:
    """A seed in 1 .. 2^31 - 2 for ``purpose`` of image ``index``, from the dataset's ``seed``."""
    state = np.random.SeedSequence([seed, index, purpose]).generate_state(1, dtype=np.uint64)[0]
    return int(state % (SEED_LIMIT - 1)) + 1


def generator(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, purpose]))


def random_rotation(gen: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly over all rotations (a normalised Gaussian quaternion)."""
    w, x, y, z = (q := gen.normal(size=4)) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def misset_matrix(misset) -> np.ndarray:
    """U = Rz Ry Rx of misset angles (radians), as -misset applies them."""
    import torch

    eye = torch.eye(3, dtype=torch.float64)
    angles = [torch.tensor(float(a), dtype=torch.float64) for a in misset]
    return rotate_xyz(eye, *angles).numpy().T  # rows of the rotated basis vectors, as columns


def _number(x: float) -> str:
    """A float as a flag value that reads back as the same double."""
    return repr(float(x))


@attrs.frozen
class Series:
    """Frame i of a rotation series: phi0 + i osc over osc, with the command line's phi steps;
    the noise seed of frame i derived from ``seed``; the same crystal (mosaic domains) in all."""

    base: RunConfig
    frames: int
    seed: int = 0
    phi0_degrees: float = 0.0  # the command line's -phi and -osc, as typed
    osc_degrees: float = 0.0

    @property
    def count(self) -> int:
        return self.frames

    def phi_degrees(self, i: int) -> float:
        return self.phi0_degrees + i * self.osc_degrees

    def reproduce(self, i: int) -> list[str]:
        return ["-phi", _number(self.phi_degrees(i)), "-seed", str(derived_seed(self.seed, i, NOISE))]

    def config(self, i: int) -> RunConfig:
        s, o = self.base.sampling, self.base.output
        return attrs.evolve(self.base, sampling=attrs.evolve(s, phi0=self.phi_degrees(i) / RTD),
                            output=attrs.evolve(o, seed=-derived_seed(self.seed, i, NOISE)))

    def record(self, i: int) -> dict:
        return {"index": i, "phi": self.phi_degrees(i), "osc": self.osc_degrees,
                "seeds": {"noise": derived_seed(self.seed, i, NOISE)}}


@attrs.frozen
class Stills:
    """Still k: the crystal turned by a rotation drawn uniformly (after the command line's own
    misset), its own mosaic domains and noise, optionally a beam energy and crystal size
    jittered by Gaussians of relative widths ``energy_jitter`` and ``size_jitter``, and
    optionally a SASE spectrum of its own (``sase``: a shot of the seed derived from (seed, k);
    its mean energy jittered with ``energy_jitter``)."""

    base: RunConfig
    count: int
    seed: int = 0
    energy_jitter: float = 0.0
    size_jitter: float = 0.0
    sase: SaseSpec | None = None

    def rotation(self, k: int) -> np.ndarray:
        """The still's orientation: its random rotation after the command line's misset."""
        base = misset_matrix(self.base.crystal.misset) if self.base.crystal.misset is not None else np.eye(3)
        return random_rotation(generator(self.seed, k, ORIENTATION)) @ base

    def misset_degrees(self, k: int) -> tuple[float, float, float]:
        return tuple(a * RTD for a in rng.umat2misset(self.rotation(k)))  # what -misset is given

    def energy_factor(self, k: int) -> float:
        """What the still's photon energy is multiplied by: 1 + energy_jitter g, g standard normal."""
        return 1.0 + (generator(self.seed, k, ENERGY).normal() * self.energy_jitter if self.energy_jitter else 0.0)

    def wavelength(self, k: int) -> float:
        """The still's beam wavelength (m): its spectrum's weighted mean with ``sase``."""
        if self.sase is not None:
            spectrum = self.spectrum(k)
            return mean_wavelength(spectrum.wavelengths, spectrum.weights)
        return self.base.beam.wavelength / self.energy_factor(k)  # energy (1 + jitter): wavelength over it

    def shot(self, k: int) -> tuple[SaseSpec, int]:
        """The still's SASE shot: ``--sase`` with its mean energy (jittered), and ``--sase-seed``."""
        spec = self.sase
        if self.energy_jitter:
            spec = spec.with_mean(spec.mean_energy_eV * self.energy_factor(k))
        return spec, derived_seed(self.seed, k, SPECTRUM)

    def spectrum(self, k: int) -> Spectrum:
        return spectrum_of_sase(*self.shot(k))

    def cells(self, k: int) -> tuple[int, int, int] | None:
        """Na, Nb, Nc of the still (whole cells, at least 1), or None for the command line's."""
        if not self.size_jitter:
            return None
        scale = 1.0 + generator(self.seed, k, SIZE).normal() * self.size_jitter
        return tuple(max(1, round(n * scale)) for n in self.base.crystal.n_cells)

    def reproduce(self, k: int) -> list[str]:
        flags = ["-misset", *map(_number, self.misset_degrees(k)),
                 "-mosaic_seed", str(derived_seed(self.seed, k, MOSAIC)),
                 "-seed", str(derived_seed(self.seed, k, NOISE))]
        if self.sase is not None:
            spec, sase_seed = self.shot(k)
            flags += ["--sase", spec.text, "--sase-seed", str(sase_seed)]
        elif self.energy_jitter:
            flags += ["-lambda", _number(self.wavelength(k) * 1e10)]
        if (cells := self.cells(k)) is not None:
            flags += ["-Na", str(cells[0]), "-Nb", str(cells[1]), "-Nc", str(cells[2])]
        return flags

    def config(self, k: int) -> RunConfig:
        b, c, o = self.base.beam, self.base.crystal, self.base.output
        crystal = attrs.evolve(c, misset=tuple(d / RTD for d in self.misset_degrees(k)), misset_random=False,
                               mosaic_seed=-derived_seed(self.seed, k, MOSAIC))
        if (cells := self.cells(k)) is not None:
            crystal = attrs.evolve(crystal, n_cells=tuple(float(n) for n in cells), Na=cells[0], Nb=cells[1],
                                   Nc=cells[2])
        if self.sase is not None:  # what `--sase SPEC --sase-seed N` resolves to (nbsim.setup.spectrum)
            beam = attrs.evolve(b, spectrum=self.spectrum(k), wavelength=self.wavelength(k))
        elif self.energy_jitter:
            beam = attrs.evolve(b, wavelength=float(_number(self.wavelength(k) * 1e10)) / 1e10)
        else:
            beam = b
        return attrs.evolve(self.base, beam=beam, crystal=crystal,
                            output=attrs.evolve(o, seed=-derived_seed(self.seed, k, NOISE)))

    def record(self, k: int) -> dict:
        record = {"index": k, "misset_degrees": list(self.misset_degrees(k)),
                  "orientation": self.rotation(k).tolist(),
                  "seeds": {"noise": derived_seed(self.seed, k, NOISE), "mosaic": derived_seed(self.seed, k, MOSAIC)}}
        if self.energy_jitter or self.sase is not None:
            record["wavelength_angstrom"] = self.wavelength(k) * 1e10
        if self.sase is not None:
            spec, sase_seed = self.shot(k)
            energies, weights = sase_shot(spec, sase_seed)
            record["spectrum"] = {"sase": spec.text, "seed": sase_seed, "energies_eV": energies.tolist(),
                                  "weights": weights.tolist()}
            record["seeds"]["spectrum"] = sase_seed
        if (cells := self.cells(k)) is not None:
            record["cells"] = list(cells)
        return record


def typed_degrees(argv: Sequence[str], flag: str, default: float) -> float:
    """The value of the last ``flag`` in ``argv`` as typed (degrees), or ``default``."""
    value = default
    for i, token in enumerate(argv[:-1]):
        if token == flag:
            value = float(argv[i + 1])
    return value
