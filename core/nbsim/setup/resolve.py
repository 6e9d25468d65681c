"""The reference program's set-up rules: from the scan state to a :class:`RunConfig`.

:func:`resolve` runs the phases in the reference order (``specs/setup.md``), one function
each: detector size, fluence and sample clipping, beam-centre defaults, the convention
block (which forces the pivot), vector normalisation, the checks that structure factors and
a crystal exist, the sampling auto-selection, the detector (placed, for the oversampling
rule), the crystal, cell counts and oversampling, structure factors, sources.  Values are
computed with the same double-precision operations as the reference.

Where a reference rule makes a typed flag ineffective, nbsim follows the rule and adds a
warning naming the flag (``RunConfig.warnings``).  Lines the reference prints while setting
up are kept in ``RunConfig.setup_notices`` as (section, text) for the printout.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from nbsim.errors import InputError, UsageError
from nbsim.io import detector_file, fdump, hkl, matrix, mtz, sourcefile
from nbsim.io import structure as atomic_model
from nbsim.model.config import (
    BeamConfig,
    CrystalConfig,
    DetectorConfig,
    OutputConfig,
    RunConfig,
    SamplingConfig,
    SourceList,
    Spectrum,
)
from nbsim.model.crystal import Lattice, build_lattice
from nbsim.model.geometry import beam_center, corner_resolution, listed_panel, placed_detector
from nbsim.model.spectra import EV_ANGSTROM, mean_wavelength
from nbsim.physics import rng
from nbsim.physics.vectors import cross, norm, unitize
from nbsim.setup.flags import PLACEMENT_FLAGS, SENSOR_FLAGS, UNUSED_BY_NANOBRAGG
from nbsim.setup.parser import parse_argv
from nbsim.setup.spectrum import SpectrumInputs, spectrum_of
from nbsim.setup.state import RTD, ScanState

CONVENTION_VECTORS = {
    # beam, fdet, sdet, odet, twotheta axis, polar, spindle
    "adxv": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "mosflm": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "denzo": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "xds": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "dials": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
}
#: how far (degrees) a detector file's beam may lie from the command line's (refined beams, not other frames)
MAX_BEAM_DISAGREEMENT_DEG = 5.0
FORCED_PIVOT = {"adxv": "beam", "mosflm": "beam", "denzo": "beam", "xds": "sample", "dials": "sample"}

#: the flag behind each validated configuration field, for error messages
FIELD_FLAGS = {"fluence": "-fluence", "water_size": "-water", "dispersion": "-dispersion", "thickness": "-detector_thick",
               "mosaic_spread": "-mosaic", "dmin": "-dmin", "wavelength": "-lambda", "pixel_size": "-pixel",
               "distance": "-distance", "roi": "-roi", "fpixels": "-detpixels", "spixels": "-detpixels"}


@attrs.frozen
class StructureInputs:
    """Structure factors from files nanoBragg does not read (nbsim's own options)."""

    mtz: str | None = None  # --mtz FILE
    mtz_column: str | None = None  # --mtz-column LABEL
    structure: str | None = None  # --structure FILE: a PDB or mmCIF model
    d_min: float | None = None  # --d-min: resolution limit (Å) of the model's reflections
    anomalous: bool = False  # --anomalous: the model's f' and f'' at the beam energy

    def given(self) -> list[str]:
        return [flag for flag, value in (("--mtz", self.mtz), ("--structure", self.structure)) if value is not None]


def config_from_argv(argv: Sequence[str], *, cwd: str | None = None,
                     structure: StructureInputs = StructureInputs(), detector: str | None = None,
                     spectrum: SpectrumInputs = SpectrumInputs()) -> RunConfig:
    """Parse and resolve a nanoBragg command line (without the program name), with structure
    factors from ``structure`` where it names a file, the detector of the geometry file
    ``detector`` (``--detector``) where given, and the beam's ``spectrum`` (``--spectrum``, ``--sase``)."""
    return resolve(parse_argv(argv), argv=tuple(argv), cwd=cwd, structure=structure, detector_file=detector,
                   spectrum=spectrum)


def resolve(st: ScanState, *, argv: Sequence[str] = (), cwd: str | None = None,
            structure: StructureInputs = StructureInputs(), detector_file: str | None = None,
            spectrum: SpectrumInputs = SpectrumInputs()) -> RunConfig:
    """Apply the set-up rules to the scan state ``st`` (``cwd``: where the structure-factor
    cache is looked for; ``detector_file``: a geometry file giving the detector's panels;
    ``spectrum``: the options giving the beam's spectrum, nbsim.setup.spectrum)."""
    run = _SetUp(st, cwd or os.getcwd(), structure)
    run.flag_warnings()
    layout = run.read_detector_file(detector_file) if detector_file else None
    beam_spectrum = run.spectrum(spectrum)
    size = run.detector_size()
    flux = run.fluence()
    centres = run.beam_centres(size)
    frame = run.convention(size, centres)
    run.normalise(frame)
    if layout is not None:
        run.beam_of_detector_file(frame, layout)
    use_dump = run.inputs_exist()
    sampling = run.sampling()
    detector = run.detector(size, centres, frame, sampling)
    if layout is not None:
        detector = run.listed_detector(detector, layout, frame)
    shortest = (float(beam_spectrum.wavelengths.min()) if beam_spectrum is not None
                else flux.beam["wavelength"] * (1.0 - sampling.beam["dispersion"] / 2))
    run.read_structure_inputs(detector, frame.beam, shortest)
    distance = float(placed_detector(detector, frame.beam).distance)  # for the oversampling rule
    # the interpolation switch reads the command line's cell counts (before -xtalsize and the clamp to 1)
    interpolate_auto = st.interpolate == 2
    interpolate = (st.Na <= 2 or st.Nb <= 2 or st.Nc <= 2) if interpolate_auto else bool(st.interpolate)
    start_seed = -int(time.time())
    crystal = run.crystal(start_seed)
    n_cells, oversample = run.cell_counts_and_oversample(crystal.lattice, flux.sample, distance, size.pixel)
    sf = run.structure_factors(use_dump)
    if sf is None or sf.count == 0:
        interpolate = False
    if st.xtal_shape == "square" and run.typed("-fudge"):
        run.warn("-fudge", "has no effect on the square (default) crystal shape")
    beam = _validated(BeamConfig, **flux.beam, **sampling.beam, source_file=run.sources(), spectrum=beam_spectrum,
                      direction=frame.beam,
                      polar_vector=frame.polar, polarization=st.polarization, nopolar=st.nopolar,
                      water_size=st.water_size, round_div=st.round_div)
    crystal_config = _validated(
        CrystalConfig, **crystal.fields, Na=st.Na, Nb=st.Nb, Nc=st.Nc, n_cells=n_cells,
        sample_x=flux.sample[0], sample_y=flux.sample[1], sample_z=flux.sample[2],
        shape=st.xtal_shape, fudge=st.fudge, mosaic_spread=sampling.mosaic_spread,
        mosaic_domains=sampling.mosaic_domains, mosaic_seed=st.mosaic_seed, default_F=st.default_F,
        structure_factors=sf, interpolate=interpolate, interpolate_auto=interpolate_auto,
    )
    sampling_config = _validated(
        SamplingConfig, **sampling.phi, spindle_axis=frame.spindle, oversample=oversample,
        oversample_thick=st.oversample_thick, oversample_polar=st.oversample_polar,
        oversample_omega=st.oversample_omega, dmin=st.dmin,
    )
    output = _validated(
        OutputConfig, floatfile=st.floatfile, intfile=st.intfile, pgmfile=st.pgmfile if st.write_pgm else None,
        noisefile=st.noisefile if st.calculate_noise else None, dumpfile=st.dumpfile,
        intfile_scale=st.intfile_scale, pgm_scale=st.pgm_scale, adc_offset=st.adc_offset,
        seed=st.seed if st.seed is not None else start_seed,
        printout=st.printout, printout_pixel=st.printout_pixel, progress=st.progress,
    )
    return RunConfig(beam=beam, detector=detector, crystal=crystal_config, sampling=sampling_config, output=output,
                     argv=tuple(argv), warnings=tuple(run.warnings), setup_notices=tuple(run.notices))


def _validated(factory: Callable[..., Any], **fields):
    """``factory(**fields)``, a validator's error naming the flag behind the field."""
    try:
        return factory(**fields)
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        raise UsageError(f"{FIELD_FLAGS.get(field, field)}: {exc}") from None


@attrs.frozen
class _Size:
    pixel: float
    fpixels: int
    spixels: int
    detsize_f: float
    detsize_s: float


@attrs.frozen
class _Flux:
    beam: dict  # fluence, flux, exposure, beamsize for BeamConfig
    sample: tuple[float, float, float]  # crystal size (x, y, z) after clipping by the beam


@attrs.frozen
class _Centres:
    Fclose: float
    Sclose: float
    Xclose: float
    Yclose: float
    roi: tuple[int, int, int, int]


@attrs.define
class _Frame:
    """The convention's vectors, beam centre and pivot."""

    beam: Any
    fdet: Any
    sdet: Any
    odet: Any
    twotheta_axis: Any
    polar: Any
    spindle: Any
    Xbeam: float
    Ybeam: float
    Fbeam: float
    Sbeam: float
    Fclose: float
    Sclose: float
    pivot: str


@attrs.frozen
class _Sampling:
    phi: dict  # phi0, phistep, phisteps, osc for SamplingConfig
    beam: dict  # divergence and dispersion for BeamConfig
    thickness: float
    thicksteps: int
    thickstep: float
    mu: float
    mosaic_spread: float
    mosaic_domains: int


@attrs.frozen
class _Crystal:
    lattice: Lattice
    fields: dict  # cell, matrix and misset for CrystalConfig


class _SetUp:
    """One resolution: the scan state, the working directory, and the warnings and notices
    the phases leave."""

    def __init__(self, st: ScanState, cwd: str, structure: StructureInputs):
        self.st, self.cwd, self.structure = st, cwd, structure
        self.warnings: list[str] = []
        self.notices: list[tuple[str, str]] = []
        self.external = None  # structure factors (and a cell) read from the files of ``structure``

    def typed(self, *names: str) -> bool:
        return any(n in self.st.typed for n in names)

    def warn(self, flag: str, text: str) -> None:
        self.warnings.append(f"{flag}: {text}")

    def notice(self, section: str, text: str) -> None:
        self.notices.append((section, text))

    def flag_warnings(self) -> None:
        for name in sorted(UNUSED_BY_NANOBRAGG & set(self.st.typed)):
            self.warn(name, "read but never used by nanoBragg; it has no effect")
        for flag, reason in self.st.cancelled:
            self.warn(flag, reason)

    def read_detector_file(self, path: str) -> detector_file.DetectorFile:
        """The panels of a geometry file, which stand for the flags that size and place the
        detector (those are refused) and for the sensor flags where the file gives a sensor."""
        st = self.st
        layout = detector_file.read(path)
        refused = sorted(PLACEMENT_FLAGS & set(st.typed))
        if layout.sensor:
            refused += sorted(SENSOR_FLAGS & set(st.typed))
        if refused:
            what = "the detector and its sensor" if layout.sensor else "the detector"
            raise UsageError(f"--detector: {path} places and sizes {what}; remove {', '.join(refused)}")
        sensors = {(p.thickness, p.mu) for p in layout.panels}
        if len(sensors) > 1:
            raise InputError(f"--detector: {path}: panels of different sensors (thickness, attenuation): "
                             "nbsim's panels share one")
        first = layout.panels[0]
        # the file stands for the flags: the set-up's rules then run as for the command line's panel
        st.pixel_size, st.fpixels, st.spixels = first.pixel_size, first.fpixels, first.spixels
        if layout.sensor:
            st.detector_thick = first.thickness
            st.detector_mu = first.mu if first.mu > 0 else -1.0  # nanoBragg's rule: 1/thickness
        if layout.wavelength is not None and not self.typed("-lambda", "-energy") and st.imgfile is None:
            st.lambda0 = layout.wavelength
        return layout

    def spectrum(self, inputs: SpectrumInputs) -> Spectrum | None:
        """The beam's spectrum the options give; its weighted mean wavelength becomes the beam's
        (in place of -lambda, -energy, or the wavelength of an -img header or a detector file)."""
        found = spectrum_of(inputs, self.st.typed)
        if found is not None:
            self.st.lambda0 = mean_wavelength(found.wavelengths, found.weights)
        return found

    def beam_of_detector_file(self, f: _Frame, layout: detector_file.DetectorFile) -> None:
        """The beam the file's panels are placed about, where it gives one: it must be the
        command line's (convention) beam within a few degrees, and replaces it."""
        if layout.beam is None:
            return
        cos = sum(a * b for a, b in zip(layout.beam, f.beam))
        if cos < math.cos(math.radians(MAX_BEAM_DISAGREEMENT_DEG)):
            raise UsageError(
                f"--detector: {layout.path}'s beam runs along ({', '.join('%g' % x for x in layout.beam)}) in "
                f"nanoBragg's frame and the command line's ({self.st.convention} convention) along "
                f"({', '.join('%g' % x for x in f.beam)}), {math.degrees(math.acos(max(-1.0, cos))):.1f} degrees "
                "apart: choose the convention whose beam the file's frame has (-mosflm for DIALS and CrystFEL files)")
        f.beam = layout.beam

    def listed_detector(self, d: DetectorConfig, layout: detector_file.DetectorFile, f: _Frame) -> DetectorConfig:
        """``d`` (sized by the file's first panel) with the file's panels, each with the sensor
        the set-up resolved, and the beam centre and distance of the first panel for headers."""
        mu = d.mu if d.thickness > 0 else 0.0  # a thin sensor's -1 (nanoBragg's "not given") is unused
        panels = tuple(attrs.evolve(p, thickness=d.thickness, mu=mu, thickstep=d.thickstep) for p in layout.panels)
        g = listed_panel(panels[0], torch.tensor(f.beam, dtype=torch.float64))
        Xbeam, Ybeam = beam_center(d.convention, float(g.Fbeam), float(g.Sbeam), d.pixel_size, d.detsize_s)
        return _validated(lambda **changes: attrs.evolve(d, **changes), panels=panels, distance=float(g.distance),
                          Xbeam=Xbeam, Ybeam=Ybeam)

    def detector_size(self) -> _Size:
        st = self.st
        pixel = st.pixel_size
        if not pixel > 0:
            raise UsageError(f"-pixel must be positive, got {pixel * 1000.0:g}")
        fpixels, spixels = st.fpixels, st.spixels
        detsize_f, detsize_s = st.detsize_f, st.detsize_s
        if fpixels < 0 or spixels < 0:
            raise UsageError(f"-detpixels must be positive, got {min(fpixels, spixels)}")
        if fpixels:
            detsize_f = pixel * fpixels
        if spixels:
            detsize_s = pixel * spixels
        if self.typed("-detsize", "-detsize_f", "-detsize_s") and (fpixels or spixels):
            self.warn("-detsize", "ignored where the pixel count is given (by -detpixels or an -img/-mask header)")
        fpixels = math.ceil(detsize_f / pixel - 0.5)
        spixels = math.ceil(detsize_s / pixel - 0.5)
        if fpixels < 1 or spixels < 1:
            raise UsageError(f"-detsize must give at least one pixel, got {fpixels}x{spixels} pixels")
        return _Size(pixel, fpixels, spixels, detsize_f, detsize_s)

    def fluence(self) -> _Flux:
        st = self.st
        fluence, flux, exposure, beamsize = st.fluence, st.flux, st.exposure, st.beamsize
        sample_x, sample_y, sample_z = st.sample_x, st.sample_y, st.sample_z
        if flux != 0.0 and exposure > 0.0 and beamsize >= 0:
            if beamsize == 0:
                raise UsageError("-beamsize must be positive to turn -flux into a fluence, got 0")
            fluence = flux * exposure / beamsize / beamsize
            if self.typed("-fluence"):
                self.warn("-fluence", "overridden by -flux, -exposure and -beamsize")
        if beamsize >= 0:
            if beamsize < sample_y:
                self.notice("pre", "WARNING: clipping sample (%g m high) with beam (%g m)" % (sample_y, beamsize))
                sample_y = beamsize
            if beamsize < sample_z:
                self.notice("pre", "WARNING: clipping sample (%g m wide) with beam (%g m)" % (sample_z, beamsize))
                sample_z = beamsize
        if exposure > 0.0:
            flux = fluence / exposure * beamsize * beamsize
        if not st.lambda0 > 0:
            if max(st.typed.get("-energy", [-1])) > max(st.typed.get("-lambda", [-1])):  # the last of the two set it
                raise UsageError(f"-energy must be positive, got {EV_ANGSTROM / (st.lambda0 * 1e10):g}")
            raise UsageError(f"-lambda must be positive, got {st.lambda0 * 1e10:g}")
        return _Flux(beam=dict(wavelength=st.lambda0, fluence=fluence, flux=flux, exposure=exposure,
                               beamsize=beamsize), sample=(sample_x, sample_y, sample_z))

    def beam_centres(self, size: _Size) -> _Centres:
        st, pixel = self.st, size.pixel
        Fclose = (st.ORGX - 0.5) * pixel if not math.isnan(st.ORGX) else math.nan
        Sclose = (st.ORGY - 0.5) * pixel if not math.isnan(st.ORGY) else math.nan
        if math.isnan(Fclose):
            Fclose = (size.detsize_f - 0 * pixel) / 2.0
        if math.isnan(Sclose):
            Sclose = (size.detsize_s + 0 * pixel) / 2.0
        Xclose = Fclose if math.isnan(st.Xclose) else st.Xclose
        Yclose = Sclose if math.isnan(st.Yclose) else st.Yclose
        roi = list(st.roi)
        roi = [roi[0] if roi[0] >= 0 else 0, roi[1] if roi[1] >= 0 else size.fpixels,
               roi[2] if roi[2] >= 0 else 0, roi[3] if roi[3] >= 0 else size.spixels]
        if roi[0] > roi[1] or roi[2] > roi[3]:
            raise UsageError(f"-roi must have xmin <= xmax and ymin <= ymax, got {' '.join(map(str, st.roi))}")
        return _Centres(Fclose, Sclose, Xclose, Yclose, tuple(roi))

    def convention(self, size: _Size, c: _Centres) -> _Frame:
        st, pixel = self.st, size.pixel
        conv = st.convention
        Xbeam, Ybeam = st.Xbeam, st.Ybeam
        Fclose, Sclose = c.Fclose, c.Sclose
        pivot = st.pivot
        if conv == "custom":
            vectors = (st.beam_vector, st.fdet_vector, st.sdet_vector, st.odet_vector, st.twotheta_axis,
                       st.polar_vector, st.spindle_vector)
            Xbeam = c.Xclose if math.isnan(Xbeam) else Xbeam
            Ybeam = c.Yclose if math.isnan(Ybeam) else Ybeam
            Fbeam, Sbeam = Xbeam, Ybeam
            Fclose, Sclose = Xbeam, Ybeam
        else:
            vectors = CONVENTION_VECTORS[conv]
            if conv == "adxv":
                Xbeam = (size.detsize_f + pixel) / 2.0 if math.isnan(Xbeam) else Xbeam
                Ybeam = (size.detsize_s - pixel) / 2.0 if math.isnan(Ybeam) else Ybeam
                Fbeam, Sbeam = Xbeam, size.detsize_s - Ybeam
            elif conv in ("mosflm", "denzo"):
                Xbeam = (size.detsize_s + pixel) / 2.0 if math.isnan(Xbeam) else Xbeam
                Ybeam = (size.detsize_f + pixel) / 2.0 if math.isnan(Ybeam) else Ybeam
                half = 0.5 if conv == "mosflm" else 0.0
                Fbeam, Sbeam = Ybeam + half * pixel, Xbeam + half * pixel
            else:  # xds, dials
                Xbeam = c.Xclose if math.isnan(Xbeam) else Xbeam
                Ybeam = c.Yclose if math.isnan(Ybeam) else Ybeam
                Fbeam, Sbeam = Xbeam, Ybeam
            pivot = FORCED_PIVOT[conv]
            self._convention_warnings(conv, pivot)
        if self.typed("-pix0_vector"):
            self.warn("-pix0_vector", "its value is ignored (nanoBragg recomputes the detector origin); "
                                      "it only selects the custom convention")
        return _Frame(*vectors, Xbeam=Xbeam, Ybeam=Ybeam, Fbeam=Fbeam, Sbeam=Sbeam, Fclose=Fclose,
                      Sclose=Sclose, pivot=pivot)

    def _convention_warnings(self, conv: str, forced: str) -> None:
        if self.typed("-pivot") and self.st.pivot != forced:
            self.warn("-pivot", f"ignored: the {conv.upper()} convention always pivots about the "
                                f"{'direct-beam spot' if forced == 'beam' else 'sample'}")
        if conv in ("xds", "dials") and self.typed("-Xbeam", "-Ybeam"):
            self.warn("-Xbeam" if self.typed("-Xbeam") else "-Ybeam",
                      f"does not move the detector under the {conv.upper()} convention (it only sets "
                      "BEAM_CENTER_X/Y in the header); use -ORGX/-ORGY")
        if conv in ("mosflm", "denzo", "adxv"):
            for f in ("-ORGX", "-ORGY", "-Xclose", "-Yclose"):
                if self.typed(f):
                    self.warn(f, f"has no effect under the {conv.upper()} convention")
        else:
            for f in ("-Xclose", "-Yclose"):
                if self.typed(f):
                    self.warn(f, f"has no effect on the image under the {conv.upper()} convention")

    def normalise(self, f: _Frame) -> None:
        f.beam = _unit(f.beam, "-beam_vector")
        f.fdet = _unit(f.fdet, "-fdet_vector")
        f.sdet = _unit(f.sdet, "-sdet_vector")
        odet_u, odet_mag = unitize(torch.tensor(f.odet, dtype=torch.float64))
        if float(odet_mag) != 1.0:
            self.notice("pre", "WARNING: auto-generating odet_vector")
            odet_u, _ = unitize(cross(torch.tensor(f.fdet, dtype=torch.float64),
                                      torch.tensor(f.sdet, dtype=torch.float64)))
        f.odet = tuple(odet_u.tolist())
        f.polar = _unit(f.polar, "-polar_vector")
        f.spindle = _unit(f.spindle, "-spindle_axis")
        f.twotheta_axis = tuple(float(x) for x in f.twotheta_axis)
        if self.typed("-twotheta_axis") and abs(math.sqrt(sum(x * x for x in f.twotheta_axis)) - 1.0) > 1e-12:
            self.warn("-twotheta_axis", "is not a unit vector; nanoBragg uses it as given, which scales "
                                        "and shears the detector when -twotheta is not 0")

    @property
    def dump_path(self) -> str:
        return os.path.join(self.cwd, self.st.dumpfile)

    def inputs_exist(self) -> bool:
        """Check that structure factors and a crystal are given; whether the structure-factor
        cache will be read."""
        st = self.st
        if self.structure.mtz_column is not None and self.structure.mtz is None:
            raise UsageError("--mtz-column names a column of the file --mtz gives, and --mtz is not given")
        if self.structure.d_min is not None and self.structure.structure is None:
            raise UsageError("--d-min is the resolution limit of a --structure model, and --structure is not given")
        if self.structure.anomalous and self.structure.mtz is not None:
            raise UsageError("--anomalous adds f' and f'' to a --structure model's sums, not to --mtz data")
        if self.structure.anomalous and self.structure.structure is None:
            raise UsageError("--anomalous adds f' and f'' to a --structure model's sums, and --structure is not given")
        given = self.structure.given()
        if len(given) > 1:
            raise UsageError(f"{given[0]} and {given[1]} both give structure factors: use one")
        if given:
            if st.hklfile is not None:
                raise UsageError(f"-hkl and {given[0]} both give structure factors: use one")
            return False  # read after the detector is placed (a model's reflections reach its corners)
        use_dump = st.hklfile is None and os.path.exists(self.dump_path)
        if st.hklfile is None and not use_dump and st.default_F == 0.0:
            raise UsageError("no structure factors: give -hkl FILE or -default_F F "
                             f"(no {st.dumpfile} cache in the working directory)")
        if st.matfile is None and st.cell[0] == 0.0:
            raise UsageError("no crystal: give -cell a b c alpha beta gamma or -mat FILE")
        return use_dump

    def sampling(self) -> _Sampling:
        st = self.st
        phi = self._phi_steps()
        hdivsteps, hdivrange, hdivstep = _auto_steps(st.hdivsteps, st.hdivrange, st.hdivstep, count_only_range=1.0)
        vdivsteps, vdivrange, vdivstep = _auto_steps(st.vdivsteps, st.vdivrange, st.vdivstep, count_only_range=1.0)
        dispsteps, dispersion, dispstep = _auto_steps(st.dispsteps, st.dispersion, -1.0, count_only_range=1.0)
        thicksteps, thick, thickstep, mu = self._sensor_layers()
        mosaic_domains, mosaic_spread = self._mosaic_domains()
        hdivsteps, hdivrange, hdivstep = _sanity(hdivsteps, hdivrange, hdivstep)
        vdivsteps, vdivrange, vdivstep = _sanity(vdivsteps, vdivrange, vdivstep)
        dispsteps_before = dispsteps
        dispsteps, dispersion, dispstep = _sanity(dispsteps, dispersion, dispstep)
        if self.typed("-dispsteps") and dispersion == 0.0 and dispsteps_before >= 1 and st.dispersion == 0.0:
            self.warn("-dispsteps", "has no effect without -dispersion (nanoBragg then uses one wavelength)")
        thicksteps, thick, thickstep = _sanity(thicksteps, thick, thickstep)
        beam = dict(dispersion=dispersion, dispsteps=dispsteps, dispstep=dispstep, hdivrange=hdivrange,
                    hdivstep=hdivstep, hdivsteps=hdivsteps, vdivrange=vdivrange, vdivstep=vdivstep,
                    vdivsteps=vdivsteps)
        return _Sampling(phi=phi, beam=beam, thickness=thick, thicksteps=thicksteps, thickstep=thickstep, mu=mu,
                         mosaic_spread=mosaic_spread, mosaic_domains=mosaic_domains)

    def _phi_steps(self) -> dict:
        st = self.st
        phisteps, osc, phistep = st.phisteps, st.osc, st.phistep
        if phisteps < 0:
            if osc < 0.0:
                if phistep <= 0.0:
                    phisteps, osc, phistep = 1, 0.0, 0.0
                else:
                    osc, phisteps = phistep, 2
            else:
                if phistep <= 0.0:
                    phisteps, phistep = 2, osc / 2.0
                else:
                    phisteps = math.ceil(osc / phistep)
        else:
            if phisteps == 0:
                phisteps = 1
            if osc < 0.0:
                if phistep <= 0.0:
                    osc = 1.0 / RTD
                    phistep = osc / phisteps
                else:
                    if st.phisteps not in (0, 2):
                        self.warn("-phisteps", "ignored: with -phistep and no -osc nanoBragg uses 2 steps")
                    osc, phisteps = phistep, 2
            elif phistep < 0.0:
                phistep = osc / phisteps
        if phisteps < 1:
            raise UsageError(f"-osc and -phistep give no phi steps (osc {osc * RTD:g}, step {phistep * RTD:g})")
        return dict(phi0=st.phi0, phistep=phistep, phisteps=phisteps, osc=osc)

    def _sensor_layers(self) -> tuple[int, float, float, float]:
        st = self.st
        thicksteps, thick, thickstep = st.detector_thicksteps, st.detector_thick, -1.0
        if thicksteps <= 0:
            if thick < 0.0:
                thicksteps, thick, thickstep = 1, 0.0, 0.0
            else:
                thicksteps = 2
                thickstep = thick / thicksteps
        else:
            if thick < 0.0:
                thick = 0.5e-6
                thickstep = thick / thicksteps
            else:
                thicksteps = 2 if thicksteps <= 1 else thicksteps
                thickstep = thick / (thicksteps - 1)
        mu = st.detector_mu
        if thick > 0.0 and mu < 0.0:
            mu = 1.0 / thick
            self.notice("sampling", "WARNING: setting detector attenuation depth to %g m" % mu)
        return thicksteps, thick, thickstep, mu

    def _mosaic_domains(self) -> tuple[int, float]:
        domains, spread = self.st.mosaic_domains, self.st.mosaic_spread
        if domains <= 0:
            if spread < 0.0:
                domains, spread = 1, 0.0
            elif spread == 0.0:
                domains = 1
            else:
                self.notice("sampling", "WARNING: finite mosaicity with only one domain! upping to 10 mosaic domains")
                domains = 10
        else:
            if spread < 0.0:
                self.notice("sampling", "WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
                spread, domains = 0.0, 1
            elif spread == 0.0:
                self.notice("sampling", "WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
                domains = 1
        return domains, spread

    def read_structure_inputs(self, detector: DetectorConfig, beam_direction, shortest_wavelength: float) -> None:
        """Read the structure factors (and the cell) the nbsim options name; a model's
        reflections reach the detector's corners at the shortest wavelength, or ``--d-min``."""
        inputs = self.structure
        if inputs.mtz is not None:
            self.external = mtz.read(inputs.mtz, inputs.mtz_column, self.st.default_F)
        elif inputs.structure is not None:
            d_min = inputs.d_min or corner_resolution(detector, beam_direction, shortest_wavelength)
            # f' and f'' at the base wavelength (-lambda, -energy), not at each wavelength of the dispersion
            energy = EV_ANGSTROM / (self.st.lambda0 * 1e10) if inputs.anomalous else None
            self.external = atomic_model.read(inputs.structure, d_min, self.st.default_F, energy=energy)
        if self.external is not None:
            self.warnings += self.external.notices

    def detector(self, size: _Size, c: _Centres, f: _Frame, s: _Sampling) -> DetectorConfig:
        st = self.st
        close_distance = None if math.isnan(st.close_distance) else st.close_distance
        header_close = "-close_distance" if self.typed("-close_distance") else "the -img/-mask header's CLOSE_DISTANCE"
        if close_distance is not None and self.typed("-distance"):
            self.warn("-distance", f"ignored because {header_close} is given")
        # a detector plane through the sample divides every pixel's distance by zero (nanoBragg: NaN images)
        if close_distance == 0.0:
            raise UsageError(f"{header_close} must not be 0: the detector plane would pass through the sample")
        if close_distance is None and st.distance == 0.0:
            source = "-distance" if self.typed("-distance") else "the -img/-mask header's DISTANCE"
            raise UsageError(f"{source} must not be 0: the detector would pass through the sample")
        if st.header_twotheta not in (None, 0.0):
            self.warn("-img" if st.imgfile else "-mask",
                      f"the header's TWOTHETA={st.header_twotheta:g} is ignored, as nanoBragg ignores it")
        mask = None
        if st.mask is not None:
            if st.mask.shape != (size.spixels, size.fpixels):
                raise InputError(
                    f"-mask: {st.maskfile} is {st.mask.shape[1]}x{st.mask.shape[0]} pixels but the detector is "
                    f"{size.fpixels}x{size.spixels}"
                )
            mask = np.asarray(st.mask) != 0
        return _validated(
            DetectorConfig, convention=st.convention, pivot=f.pivot, fpixels=size.fpixels, spixels=size.spixels,
            pixel_size=size.pixel, detsize_f=size.detsize_f, detsize_s=size.detsize_s, distance=st.distance,
            close_distance=close_distance, Xbeam=f.Xbeam, Ybeam=f.Ybeam, Xclose=c.Xclose, Yclose=c.Yclose,
            Fbeam=f.Fbeam, Sbeam=f.Sbeam, Fclose=f.Fclose, Sclose=f.Sclose, fdet=f.fdet, sdet=f.sdet, odet=f.odet,
            twotheta_axis=f.twotheta_axis, rotx=st.detector_rotx, roty=st.detector_roty, rotz=st.detector_rotz,
            twotheta=st.twotheta, thickness=s.thickness, thicksteps=s.thicksteps, thickstep=s.thickstep, mu=s.mu,
            curved=st.curved_detector, point_pixel=st.point_pixel, roi=c.roi, mask=mask, mask_file=st.maskfile,
            img_file=st.imgfile,
        )

    def crystal(self, start_seed: int) -> _Crystal:
        st = self.st
        cell = None
        if self.external is not None and st.matfile is None and st.cell[0] == 0.0:
            cell = self.external.cell
        elif st.user_cell:
            a, b, c, al, be, ga = st.cell
            b = a if b <= 0.0 else b
            c = a if c <= 0.0 else c
            al = math.pi / 2 if al <= 0.0 else al
            be = math.pi / 2 if be <= 0.0 else be
            ga = math.pi / 2 if ga <= 0.0 else ga
            cell = (a, b, c, al, be, ga)
        recip_matrix = None if st.matfile is None else matrix.read(st.matfile)
        misset = st.misset
        misset_random = misset == "random"
        misset_seed = st.misset_seed if st.misset_seed is not None else start_seed
        if misset_random:
            u = rng.mosaic_rotation_umat(90.0, rng.Ran1(), [misset_seed])
            misset = rng.umat2misset(u)
            self.notice("crystal", "random orientation misset angles: %f %f %f deg" % tuple(x * RTD for x in misset))
        elif self.typed("-misset_seed"):
            self.warn("-misset_seed", "has no effect without -misset random")

        def t64(x):
            return None if x is None else torch.tensor(x, dtype=torch.float64)

        lattice = build_lattice(cell=t64(cell), matrix=t64(recip_matrix), wavelength=t64(st.lambda0),
                                misset=t64(misset))
        for text in lattice.notices:
            self.notice("crystal", text)
        return _Crystal(lattice, dict(cell=cell, reciprocal_matrix=recip_matrix, matrix_file=st.matfile,
                                      misset=None if misset is None else tuple(misset), misset_random=misset_random,
                                      misset_seed=misset_seed))

    def cell_counts_and_oversample(self, lattice: Lattice, sample: tuple[float, float, float], distance: float,
                                   pixel: float) -> tuple[tuple[float, float, float], int]:
        """The cell counts (from the crystal sizes where given, at least 1) and the oversampling
        (auto-selected from the crystal size and the placed detector's distance)."""
        st = self.st
        lengths_m = [float(norm(v * 1e-10)) for v in lattice.real]
        counts = [st.Na, st.Nb, st.Nc]
        for axis, size in enumerate(sample):
            if size > 0:
                counts[axis] = math.ceil(size / lengths_m[axis])
        Na, Nb, Nc = (max(float(n), 1.0) for n in counts)
        xtalsize_max = max(lengths_m[0] * Na, lengths_m[1] * Nb, lengths_m[2] * Nc)
        reciprocal_pixel = st.lambda0 * distance / pixel
        recommended = max(math.ceil(3.0 * xtalsize_max / reciprocal_pixel), 1)
        oversample = st.oversample
        if oversample <= 0:
            oversample = recommended
            self.notice("oversample", "auto-selected %d-fold oversampling" % oversample)
        if oversample < recommended:
            self.notice("oversample", "WARNING: maximum dimension of sample is %g A" % (xtalsize_max * 1e10))
            self.notice("oversample", "         but reciprocal pixel size is %g A" % (reciprocal_pixel * 1e10))
            self.notice("oversample", "         intensity may vary significantly across a pixel!")
            self.notice("oversample", "         recommend -oversample %d to work around this" % recommended)
        return (Na, Nb, Nc), oversample

    def structure_factors(self, use_dump: bool):
        st = self.st
        sf = None
        if self.external is not None:
            sf = self.external.structure_factors
        elif st.hklfile is not None:
            sf = hkl.read(st.hklfile, st.default_F)
        elif use_dump:
            try:
                sf = fdump.read(self.dump_path)
            except fdump.CacheError as exc:
                if self.typed("-dump"):
                    raise
                # the user never named the file: nanoBragg reads the cache a previous -hkl run left
                raise InputError(f"{self.dump_path}, the structure-factor cache nanoBragg reads when no -hkl is "
                                 f"given, is unusable ({exc.reason}): remove it or give -hkl FILE") from None
            self.warn("-hkl", f"not given: reading structure factors from the cache {self.dump_path}")
        if st.stolfile is not None:
            sourcefile.read(st.stolfile, flag="-stol", columns=2)
        return sf

    def sources(self) -> SourceList | None:
        st = self.st
        if st.sourcefile is None:
            return None
        table = sourcefile.read(st.sourcefile)
        for f in ("-divergence", "-hdivrange", "-vdivrange", "-hdivstep", "-vdivstep", "-hdivsteps",
                  "-vdivsteps", "-divsteps", "-dispersion", "-dispsteps"):
            if self.typed(f):
                self.warn(f, "ignored because -sourcefile lists the sources")
        return SourceList(positions=table[:, :3].copy(), weights=table[:, 3].copy(), wavelengths=table[:, 4].copy())


def _auto_steps(steps: int, rng_: float, step: float, *, count_only_range: float) -> tuple[int, float, float]:
    """The divergence/dispersion auto-selection table (D1-D8) of the reference."""
    if steps <= 0:
        if rng_ < 0.0:
            if step <= 0.0:
                return 1, 0.0, 0.0
            return 2, step, step
        if step <= 0.0:
            return 2, rng_, rng_
        return math.ceil(rng_ / step), rng_, step
    if rng_ < 0.0:
        if step <= 0.0:
            return steps, count_only_range, count_only_range / steps
        return 2, step, step
    if step <= 0.0:
        steps = 2 if steps <= 1 else steps
        return steps, rng_, rng_ / (steps - 1)
    return steps, rng_, step


def _sanity(steps: int, rng_: float, step: float) -> tuple[int, float, float]:
    if rng_ <= 0.0 or step <= 0.0 or steps <= 0:
        return 1, 0.0, 0.0
    return steps, rng_, step


def _unit(v, flag: str) -> tuple[float, float, float]:
    t = torch.tensor(v, dtype=torch.float64)
    u, mag = unitize(t)
    if float(mag) == 0.0:
        raise UsageError(f"{flag} must be a non-zero vector, got {tuple(v)!r}")
    return tuple(u.tolist())
