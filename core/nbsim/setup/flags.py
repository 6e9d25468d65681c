"""The table of nanoBragg flags nbsim accepts: names, values, topic and effect.

Every flag is matched by its whole name (``-mosaic_domains`` is an alias listed here, not a
substring hit).  Each entry's ``apply`` performs exactly the assignment the reference program
makes for that flag, with the same unit conversion written the same way (``v/1000.0`` is not
``v*1e-3`` in floating point), so that the scan state equals the program's.  Side effects the
program has only because of substring matching are deliberately absent; ``specs/cli.md``
lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from nbsim.errors import UsageError
from nbsim.model.spectra import photon_wavelength
from nbsim.setup.state import RTD, ScanState

# value shapes a flag can take
NONE = "none"
NUMBER = "number"
INTEGER = "integer"
TEXT = "text"
VECTOR = "vector"  # three numbers
ROI = "roi"  # four integers
PIXEL = "pixel"  # two integers
CELL = "cell"  # one to six numbers
MISSET = "misset"  # "random" or three numbers
PIVOT = "pivot"  # "beam" or "sample"
ABSORPTION = "absorption"  # a number or "inf"

TOPICS = (
    "Crystal",
    "Structure factors",
    "Mosaicity and orientation",
    "Beam",
    "Detector",
    "Sampling",
    "Output files",
    "Console",
)


@attrs.frozen
class Flag:
    """One nanoBragg flag: its spellings, the values it takes and what it sets."""

    names: tuple[str, ...]
    shape: str
    topic: str
    help: str
    apply: Callable[[ScanState, Any], None]
    metavar: str = ""

    @property
    def name(self) -> str:
        return self.names[0]


def _set(**fields: Callable[[Any], Any] | Any) -> Callable[[ScanState, Any], None]:
    """An action assigning state fields: a callable value is applied to the flag's value."""

    def apply(state: ScanState, value: Any) -> None:
        for field, how in fields.items():
            setattr(state, field, how(value) if callable(how) else how)

    return apply


def _ident(v):
    return v


def _mm(v: float) -> float:
    return v / 1000.0


def _deg(v: float) -> float:
    return v / RTD


def _micron_to_m(v: float) -> float:
    return v * 1e-6


def _neg_int(v: int) -> int:
    return -v


def _cell(state: ScanState, values: list[float]) -> None:
    state.user_cell = True
    for i, v in enumerate(values):
        state.cell[i] = v if i < 3 else v / RTD


def _misset(state: ScanState, value: str | tuple[float, float, float]) -> None:
    if value == "random":
        state.misset = "random"
    else:
        state.misset = tuple(v / RTD for v in value)


def _absorption(state: ScanState, value: float) -> None:
    if value == float("inf") or value == 0.0:
        if state.detector_thick != 0.0:
            state.cancelled.append(
                ("-detector_thick", "cancelled by a later -detector_abs inf/0, which zeroes the thickness")
            )
        state.detector_thick = 0.0
        state.detector_mu = 0.0
    else:
        state.detector_mu = 1.0 / (value * 1e-6)


def _noop(state: ScanState, value: Any) -> None:
    """Flags the reference program reads but never uses (a warning names them)."""


def _printout_pixel(state: ScanState, value: tuple[int, int]) -> None:
    state.printout_pixel = (value[0], value[1])
    state.printout = True


def _trace_pixel(state: ScanState, value: tuple[int, int]) -> None:
    # nbsim's spelling takes (slow, fast), like an array index
    state.printout_pixel = (value[1], value[0])
    state.printout = True


def _energy(v: float) -> float:
    if v == 0.0:  # nanoBragg divides by it: an infinite wavelength
        raise UsageError("-energy must not be 0")
    return photon_wavelength(v)


def _flag(names, shape, topic, help, apply, metavar=""):
    if isinstance(names, str):
        names = (names,)
    return Flag(tuple(names), shape, topic, help, apply, metavar)


C, SF, MO, B, D, S, O, K = TOPICS

FLAGS: tuple[Flag, ...] = (
    # crystal
    _flag("-cell", CELL, C, "unit cell a b c (Å) alpha beta gamma (deg); missing values: b=c=a, 90°",
          _cell, "a [b c al be ga]"),
    _flag("-mat", TEXT, C, "MOSFLM-style orientation matrix file (a* b* c* as columns)",
          _set(matfile=_ident), "FILE"),
    _flag("-N", INTEGER, C, "unit cells along a, b and c", _set(Na=float, Nb=float, Nc=float), "N"),
    _flag("-Na", INTEGER, C, "unit cells along a", _set(Na=float), "N"),
    _flag("-Nb", INTEGER, C, "unit cells along b", _set(Nb=float), "N"),
    _flag("-Nc", INTEGER, C, "unit cells along c", _set(Nc=float), "N"),
    _flag(("-xtalsize", "-xtal_size", "-samplesize", "-sample_size"), NUMBER, C,
          "crystal full width in all directions (mm); sets Na, Nb, Nc from the cell",
          _set(sample_x=_mm, sample_y=_mm, sample_z=_mm), "MM"),
    _flag(("-xtal_thick", "-xtal_x", "-sample_thick", "-sample_x"), NUMBER, C,
          "crystal size along x (mm)", _set(sample_x=_mm), "MM"),
    _flag(("-xtal_width", "-xtal_y", "-sample_width", "-sample_y", "-width"), NUMBER, C,
          "crystal size along y (mm)", _set(sample_y=_mm), "MM"),
    _flag(("-xtal_height", "-xtal_heigh", "-xtal_z", "-sample_height", "-sample_heigh", "-sample_z",
           "-height", "-heigh"), NUMBER, C, "crystal size along z (mm)", _set(sample_z=_mm), "MM"),
    _flag("-square_xtal", NONE, C, "parallelepiped crystal: sinc lattice transform (default)",
          _set(xtal_shape="square")),
    _flag("-round_xtal", NONE, C, "ellipsoidal crystal: sinc3 lattice transform", _set(xtal_shape="round")),
    _flag("-gauss_xtal", NONE, C, "Gaussian spots, no inter-Bragg maxima", _set(xtal_shape="gauss")),
    _flag(("-tophat_spots", "-binary_spots"), NONE, C, "flat-top spots clipped at the FWHM",
          _set(xtal_shape="tophat")),
    _flag("-fudge", NUMBER, C, "spot-width factor of the round, gauss and tophat shapes",
          _set(fudge=_ident), "F"),
    _flag(("-density", "-sample_den", "-sample_density"), NUMBER, C,
          "sample density (g/cm^3); read but unused by nanoBragg", _noop, "RHO"),
    _flag(("-MW", "-molec", "-molecules", "-molecular_weight"), NUMBER, C,
          "molecular weight; read but unused by nanoBragg", _noop, "MW"),
    # structure factors
    _flag("-hkl", TEXT, SF, "text file of h k l F (extra columns are ignored)", _set(hklfile=_ident), "FILE"),
    _flag("-default_F", NUMBER, SF, "F of every reflection not in the HKL file (default 0)",
          _set(default_F=_ident), "F"),
    _flag("-dump", TEXT, SF, "binary structure-factor cache, written after -hkl, read without it",
          _set(dumpfile=_ident), "FILE"),
    _flag("-interpolate", NONE, SF, "tricubic interpolation of F between Bragg peaks",
          _set(interpolate=1)),
    _flag("-nointerpolate", NONE, SF, "nearest-neighbour F (default unless a crystal axis has <= 2 cells)",
          _set(interpolate=0)),
    _flag("-stol", TEXT, SF, "amorphous F(sin(theta)/lambda) table; read but unused by nanoBragg",
          _set(stolfile=_ident), "FILE"),
    _flag("-4stol", TEXT, SF, "amorphous F(4 sin(theta)/lambda) table; read but unused",
          _set(stolfile=_ident), "FILE"),
    _flag("-Q", TEXT, SF, "amorphous F(Q) table; read but unused", _set(stolfile=_ident), "FILE"),
    _flag("-stolout", TEXT, SF, "name of an amorphous-scattering output nanoBragg never writes", _noop, "FILE"),
    # orientation and mosaicity
    _flag("-misset", MISSET, MO, "crystal rotations about x, y, z (deg), or 'random'", _misset,
          "X Y Z|random"),
    _flag("-misset_seed", INTEGER, MO, "random-number seed of -misset random", _set(misset_seed=_neg_int),
          "SEED"),
    _flag(("-mosaic", "-mosaicity", "-mosaici", "-mosaic_spread", "-mosaic_spr"), NUMBER, MO,
          "isotropic mosaic spread (deg)", _set(mosaic_spread=_deg), "DEG"),
    _flag(("-mosaic_domains", "-mosaic_dom", "-mosaic_doms"), INTEGER, MO, "number of mosaic domains",
          _set(mosaic_domains=_ident), "N"),
    _flag("-mosaic_seed", INTEGER, MO, "random-number seed of the mosaic domains (default 12345678)",
          _set(mosaic_seed=_neg_int), "SEED"),
    # beam
    _flag(("-lambda", "-wave", "-wavelength"), NUMBER, B, "incident wavelength (Å)",
          _set(lambda0=lambda v: v / 1.0e10), "Å"),
    _flag("-energy", NUMBER, B, "incident photon energy (eV)", _set(lambda0=_energy), "EV"),
    _flag("-fluence", NUMBER, B, "integrated incident fluence (photons/m^2)", _set(fluence=_ident), "PH/M2"),
    _flag("-flux", NUMBER, B, "incident flux (photons/s); with -exposure and -beamsize sets the fluence",
          _set(flux=_ident), "PH/S"),
    _flag("-exposure", NUMBER, B, "exposure time (s)", _set(exposure=_ident), "S"),
    _flag("-beamsize", NUMBER, B, "beam size (mm); also clips the crystal", _set(beamsize=_mm), "MM"),
    _flag("-dispersion", NUMBER, B, "spectral dispersion delta-lambda/lambda (percent)",
          _set(dispersion=lambda v: v / 100.0), "PCT"),
    _flag("-dispsteps", INTEGER, B, "number of wavelengths across the dispersion", _set(dispsteps=_ident), "N"),
    _flag("-divergence", NUMBER, B, "horizontal and vertical divergence range (mrad)",
          _set(hdivrange=_mm, vdivrange=_mm), "MRAD"),
    _flag("-hdivrange", NUMBER, B, "horizontal divergence range (mrad)", _set(hdivrange=_mm), "MRAD"),
    _flag("-vdivrange", NUMBER, B, "vertical divergence range (mrad)", _set(vdivrange=_mm), "MRAD"),
    _flag("-hdivstep", NUMBER, B, "horizontal divergence step (mrad)", _set(hdivstep=_mm), "MRAD"),
    _flag("-vdivstep", NUMBER, B, "vertical divergence step (mrad)", _set(vdivstep=_mm), "MRAD"),
    _flag("-hdivsteps", INTEGER, B, "horizontal divergence points", _set(hdivsteps=_ident), "N"),
    _flag("-vdivsteps", INTEGER, B, "vertical divergence points", _set(vdivsteps=_ident), "N"),
    _flag("-divsteps", INTEGER, B, "divergence points in both directions",
          _set(hdivsteps=_ident, vdivsteps=_ident), "N"),
    _flag("-round_div", NONE, B, "trim the divergence grid to an ellipse (default)", _set(round_div=True)),
    _flag("-square_div", NONE, B, "keep the full divergence grid", _set(round_div=False)),
    _flag("-sourcefile", TEXT, B, "explicit sources: X Y Z weight lambda(m) per line",
          _set(sourcefile=_ident), "FILE"),
    _flag("-polar", NUMBER, B, "Kahn polarization factor (default 0); re-enables polarization",
          _set(polarization=_ident, nopolar=False), "K"),
    _flag("-nopolar", NONE, B, "no polarization correction", _set(nopolar=True)),
    _flag("-water", NUMBER, B, "water thickness around the crystal for background (µm)",
          _set(water_size=lambda v: v / 1e6), "UM"),
    # detector
    _flag("-distance", NUMBER, D, "sample to detector distance along the beam (mm); pivot beam",
          _set(distance=_mm, pivot="beam"), "MM"),
    _flag("-close_distance", NUMBER, D, "sample to detector-plane distance (mm); pivot sample",
          _set(close_distance=_mm, pivot="sample"), "MM"),
    _flag("-pixel", NUMBER, D, "pixel size (mm)", _set(pixel_size=_mm), "MM"),
    _flag("-detpixels", INTEGER, D, "detector size in pixels (square)", _set(fpixels=_ident, spixels=_ident), "N"),
    _flag(("-detpixels_f", "-detpixels_x"), INTEGER, D, "detector pixels along the fast axis",
          _set(fpixels=_ident), "N"),
    _flag(("-detpixels_s", "-detpixels_y"), INTEGER, D, "detector pixels along the slow axis",
          _set(spixels=_ident), "N"),
    _flag("-detsize", NUMBER, D, "detector size (mm, square)", _set(detsize_f=_mm, detsize_s=_mm), "MM"),
    _flag("-detsize_f", NUMBER, D, "detector size along the fast axis (mm)", _set(detsize_f=_mm), "MM"),
    _flag("-detsize_s", NUMBER, D, "detector size along the slow axis (mm)", _set(detsize_s=_mm), "MM"),
    _flag("-Xbeam", NUMBER, D, "direct-beam position, convention X (mm); pivot beam",
          _set(Xbeam=_mm, pivot="beam"), "MM"),
    _flag("-Ybeam", NUMBER, D, "direct-beam position, convention Y (mm); pivot beam",
          _set(Ybeam=_mm, pivot="beam"), "MM"),
    _flag("-Xclose", NUMBER, D, "near point X (mm); pivot sample", _set(Xclose=_mm, pivot="sample"), "MM"),
    _flag("-Yclose", NUMBER, D, "near point Y (mm); pivot sample", _set(Yclose=_mm, pivot="sample"), "MM"),
    _flag("-ORGX", NUMBER, D, "XDS origin, fast (pixels); pivot sample", _set(ORGX=_ident, pivot="sample"), "PX"),
    _flag("-ORGY", NUMBER, D, "XDS origin, slow (pixels); pivot sample", _set(ORGY=_ident, pivot="sample"), "PX"),
    _flag("-pivot", PIVOT, D, "rotate the detector about the 'beam' spot or the 'sample'",
          _set(pivot=_ident), "beam|sample"),
    _flag("-mosflm", NONE, D, "MOSFLM convention (default)", _set(convention="mosflm", pivot="beam")),
    _flag("-xds", NONE, D, "XDS convention", _set(convention="xds", pivot="sample")),
    _flag("-adxv", NONE, D, "ADXV convention", _set(convention="adxv", pivot="beam")),
    _flag("-denzo", NONE, D, "DENZO convention", _set(convention="denzo", pivot="beam")),
    _flag("-dials", NONE, D, "DIALS convention", _set(convention="dials", pivot="beam")),
    _flag("-fdet_vector", VECTOR, D, "fast-axis direction (custom convention)",
          _set(fdet_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-sdet_vector", VECTOR, D, "slow-axis direction (custom convention)",
          _set(sdet_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-odet_vector", VECTOR, D, "detector normal (custom convention)",
          _set(odet_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-beam_vector", VECTOR, D, "X-ray beam direction (custom convention)",
          _set(beam_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-polar_vector", VECTOR, D, "E-vector polarization direction (custom convention)",
          _set(polar_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-spindle_axis", VECTOR, D, "phi rotation axis (custom convention)",
          _set(spindle_vector=_ident, convention="custom"), "X Y Z"),
    _flag("-twotheta_axis", VECTOR, D, "two-theta rotation axis (custom convention)",
          _set(twotheta_axis=_ident, convention="custom"), "X Y Z"),
    _flag(("-pix0_vector", "-pix0_vector_mm"), VECTOR, D,
          "vector to the first pixel; nanoBragg recomputes it, so only the custom convention takes effect",
          _set(convention="custom"), "X Y Z"),
    _flag("-twotheta", NUMBER, D, "detector two-theta swing (deg); pivot sample",
          _set(twotheta=_deg, pivot="sample"), "DEG"),
    _flag("-detector_rotx", NUMBER, D, "detector rotation about x (deg)", _set(detector_rotx=_deg), "DEG"),
    _flag("-detector_roty", NUMBER, D, "detector rotation about y (deg)", _set(detector_roty=_deg), "DEG"),
    _flag("-detector_rotz", NUMBER, D, "detector rotation about z (deg)", _set(detector_rotz=_deg), "DEG"),
    _flag(("-detector_absorb", "-detector_abs", "-detector_absorption"), ABSORPTION, D,
          "sensor attenuation depth (µm), or 'inf' (also zeroes the thickness)", _absorption, "UM|inf"),
    _flag("-detector_thick", NUMBER, D, "sensor thickness (µm)", _set(detector_thick=_micron_to_m), "UM"),
    _flag(("-detector_thicksteps", "-thicksteps"), INTEGER, D, "sensor layers",
          _set(detector_thicksteps=_ident), "N"),
    _flag("-curved_det", NONE, D, "curved detector: every pixel at the same distance",
          _set(curved_detector=True)),
    _flag("-point_pixel", NONE, D, "solid angle 1/R^2 (no obliquity)", _set(point_pixel=True)),
    _flag("-img", TEXT, D, "SMV image whose header initialises the detector and beam", _noop, "FILE"),
    _flag("-mask", TEXT, D, "SMV mask: pixels that are 0 are not rendered; its header initialises too",
          _noop, "FILE"),
    # sampling
    _flag("-oversample", INTEGER, S, "sub-pixels per pixel side (default: automatic)",
          _set(oversample=_ident), "N"),
    _flag("-oversample_thick", NONE, S, "recompute the sensor capture fraction per sub-pixel",
          _set(oversample_thick=True)),
    _flag("-oversample_polar", NONE, S, "recompute polarization per sub-pixel", _set(oversample_polar=True)),
    _flag("-oversample_omega", NONE, S, "recompute the solid angle per sub-pixel", _set(oversample_omega=True)),
    _flag("-phi", NUMBER, S, "starting spindle angle (deg)", _set(phi0=_deg), "DEG"),
    _flag("-osc", NUMBER, S, "oscillation range (deg)", _set(osc=_deg), "DEG"),
    _flag("-phistep", NUMBER, S, "spindle step (deg)", _set(phistep=_deg), "DEG"),
    _flag("-phisteps", INTEGER, S, "spindle steps", _set(phisteps=_ident), "N"),
    _flag("-dmin", NUMBER, S, "skip scattering beyond this resolution (Å)",
          _set(dmin=lambda v: v * 1e-10), "Å"),
    _flag("-roi", ROI, S, "render only xmin xmax ymin ymax (pixels, inclusive)",
          _set(roi=lambda v: list(v)), "XMIN XMAX YMIN YMAX"),
    # output files
    _flag(("-floatfile", "-floatimage"), TEXT, O, "float32 image (default floatimage.bin)",
          _set(floatfile=_ident), "FILE"),
    _flag(("-intfile", "-intimage"), TEXT, O, "noiseless SMV image (default intimage.img)",
          _set(intfile=_ident), "FILE"),
    _flag(("-pgmfile", "-pgmimage"), TEXT, O, "8-bit PGM image (default image.pgm)",
          _set(pgmfile=_ident, write_pgm=True), "FILE"),
    _flag(("-noisefile", "-noiseimage"), TEXT, O, "SMV image with Poisson noise (default noiseimage.img)",
          _set(noisefile=_ident, calculate_noise=True), "FILE"),
    _flag("-nonoise", NONE, O, "do not write the noise image", _set(calculate_noise=False)),
    _flag("-nopgm", NONE, O, "do not write the PGM image", _set(write_pgm=False)),
    _flag("-scale", NUMBER, O, "scale of the SMV image (default: 55000/max)", _set(intfile_scale=_ident), "S"),
    _flag("-pgmscale", NUMBER, O, "scale of the PGM image (default: automatic)",
          _set(pgm_scale=_ident, write_pgm=True), "S"),
    _flag("-adc", NUMBER, O, "offset added to SMV pixels (default 40)", _set(adc_offset=_ident), "COUNTS"),
    _flag("-seed", INTEGER, O, "random-number seed of the noise image (default: time)",
          _set(seed=_neg_int), "SEED"),
    # console
    _flag("-printout", NONE, K, "print every pixel's intermediate values", _set(printout=True)),
    _flag("-printout_pixel", PIXEL, K, "print the intermediate values of pixel FAST SLOW",
          _printout_pixel, "FAST SLOW"),
    _flag("-trace_pixel", PIXEL, K, "nbsim: print the intermediate values of pixel SLOW FAST",
          _trace_pixel, "SLOW FAST"),
    _flag("-noprogress", NONE, K, "no progress meter", _set(progress=False)),
    _flag("-progress", NONE, K, "progress meter on stderr (default when it is a terminal)",
          _set(progress=True)),
    _flag("-coherent", NONE, K, "read but unused by nanoBragg", _noop),
)

#: whole-token lookup: every spelling -> its flag
BY_NAME: dict[str, Flag] = {}
for _f in FLAGS:
    for _n in _f.names:
        if _n in BY_NAME:
            raise RuntimeError(f"flag spelling {_n} is listed twice")
        BY_NAME[_n] = _f

#: flags nanoBragg reads and never uses; nbsim warns when they are given
UNUSED_BY_NANOBRAGG = {"-density", "-MW", "-stolout", "-coherent", "-stol", "-4stol", "-Q"}

#: flags that size and place the detector: a detector file (``--detector``) does that instead
PLACEMENT_FLAGS = frozenset((
    "-distance", "-close_distance", "-pixel", "-detpixels", "-detpixels_f", "-detpixels_s", "-detsize", "-detsize_f",
    "-detsize_s", "-Xbeam", "-Ybeam", "-Xclose", "-Yclose", "-ORGX", "-ORGY", "-pivot", "-fdet_vector",
    "-sdet_vector", "-odet_vector", "-twotheta_axis", "-pix0_vector", "-twotheta", "-detector_rotx", "-detector_roty",
    "-detector_rotz", "-curved_det",
))
#: flags that describe the sensor, which a detector file may describe instead
SENSOR_FLAGS = frozenset(("-detector_thick", "-detector_absorb"))
