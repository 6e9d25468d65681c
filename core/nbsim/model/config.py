"""Frozen, validated configuration of a simulation.

A :class:`RunConfig` holds everything a render needs, already resolved by the reference
program's set-up rules (``nbsim.setup.resolve``): lengths in metres, angles in radians,
wavelengths in metres, reciprocal vectors in Å⁻¹, counts as integers.  Build one from a
nanoBragg command line with :func:`nbsim.config_from_argv`; derive variants with
``attrs.evolve``.  Array fields (structure factors, mask) are excluded from equality.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

Vec3 = tuple[float, float, float]


def _vec3(value) -> Vec3:
    v = tuple(float(x) for x in value)
    if len(v) != 3:
        raise ValueError(f"vector must have 3 components, got {value!r}")
    return v  # type: ignore[return-value]


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(instance, attribute, value):
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be non-negative, got {value!r}")


def _at_least_one(instance, attribute, value):
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _finite(instance, attribute, value):
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _one_of(*choices):
    def check(instance, attribute, value):
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


@attrs.frozen(kw_only=True, eq=False)
class StructureFactors:
    """Structure-factor amplitudes on an integer hkl grid.

    ``grid[h - h_min, k - k_min, l - l_min]`` for h in h_min..h_max (and so on); the grid has
    one spare plane of zeros at the high end of every axis, exactly like the reference
    program's (it is part of the ``Fdump.bin`` format).  ``count`` is the program's ``hkls``:
    the number of records read (HKL file) or h_range*k_range*l_range (Fdump).
    """

    grid: np.ndarray
    h_min: int
    k_min: int
    l_min: int
    h_max: int
    k_max: int
    l_max: int
    count: int
    origin: str  # "hkl", "dump" or "mtz"
    path: str

    @property
    def bounds(self) -> tuple[int, int, int, int, int, int]:
        return (self.h_min, self.h_max, self.k_min, self.k_max, self.l_min, self.l_max)


@attrs.frozen(kw_only=True, eq=False)
class SourceList:
    """Sources read from ``-sourcefile``: positions (any length unit), weights, wavelengths (m)."""

    positions: np.ndarray  # (n, 3) as read
    weights: np.ndarray  # (n,) printed but never used, as in the reference
    wavelengths: np.ndarray  # (n,) metres


@attrs.frozen(kw_only=True, eq=False)
class Spectrum:
    """The beam's spectrum (``--spectrum``, ``--sase``): wavelengths (m) and their intensity weights.

    It is the dispersion axis of the sources (``nbsim.model.sources``): every divergence grid
    point gets every wavelength, each source's terms weighted by ``weights`` over their mean
    (``nbsim.model.spectra.intensity_weights``).  ``origin`` says where it came from, for people.
    """

    wavelengths: np.ndarray  # (n,) metres
    weights: np.ndarray  # (n,) non-negative, not all 0
    origin: str


@attrs.frozen(kw_only=True)
class BeamConfig:
    wavelength: float = attrs.field(validator=_positive)
    fluence: float = attrs.field(validator=[_finite, _non_negative])
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    dispersion: float = attrs.field(default=0.0, validator=_non_negative)
    dispsteps: int = attrs.field(default=1, validator=_at_least_one)
    dispstep: float = 0.0
    hdivrange: float = 0.0
    hdivstep: float = 0.0
    hdivsteps: int = attrs.field(default=1, validator=_at_least_one)
    vdivrange: float = 0.0
    vdivstep: float = 0.0
    vdivsteps: int = attrs.field(default=1, validator=_at_least_one)
    round_div: bool = True
    source_distance: float = 10.0
    source_file: SourceList | None = attrs.field(default=None, eq=False)
    spectrum: Spectrum | None = attrs.field(default=None, eq=False)  # then wavelength is its weighted mean
    direction: Vec3 = attrs.field(converter=_vec3)
    polar_vector: Vec3 = attrs.field(converter=_vec3)
    polarization: float = 0.0  # Kahn factor
    nopolar: bool = False
    water_size: float = attrs.field(default=0.0, validator=_non_negative)


def _unit(value) -> Vec3:
    v = _vec3(value)
    norm = math.sqrt(sum(x * x for x in v))
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"axis must be a finite non-zero vector, got {value!r}")
    return tuple(x / norm for x in v)  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class PanelConfig:
    """One flat panel of a detector, in the laboratory frame of the configuration's beam.

    ``origin``: metres from the sample to the outer corner of pixel (0, 0), the corner the
    pixel indices count from (DIALS' panel origin, nanoBragg's pix0); ``fast``, ``slow``: the
    directions of increasing fast and slow pixel index (normalised here); ``normal``: the
    sensor's normal, away from the sample (default fast x slow), along which the sensor
    layers lie; ``thickness`` in metres; ``mu``: attenuation coefficient in 1/m.
    """

    name: str = ""
    origin: Vec3 = attrs.field(converter=_vec3)
    fast: Vec3 = attrs.field(converter=_unit)
    slow: Vec3 = attrs.field(converter=_unit)
    normal: Vec3 = attrs.field(converter=_unit)
    pixel_size: float = attrs.field(validator=_positive)
    fpixels: int = attrs.field(validator=_at_least_one)
    spixels: int = attrs.field(validator=_at_least_one)
    thickness: float = attrs.field(default=0.0, validator=_non_negative)
    mu: float = attrs.field(default=0.0, validator=_non_negative)
    #: the depth between sensor layers; None: thickness / the detector's thicksteps (the command
    #: line's own rule differs, ``specs/``: a panel cut from it keeps its step)
    thickstep: float | None = attrs.field(default=None, validator=attrs.validators.optional(_non_negative))

    @normal.default
    def _fast_cross_slow(self):
        (fx, fy, fz), (sx, sy, sz) = self.fast, self.slow
        return (fy * sz - fz * sy, fz * sx - fx * sz, fx * sy - fy * sx)

    @origin.validator
    def _check_origin(self, attribute, value):
        if not all(math.isfinite(x) for x in value):
            raise ValueError(f"origin must be finite, got {value!r}")


def _check_panels(instance, attribute, panels):
    if panels is None:
        return
    if not panels:
        raise ValueError("panels must hold at least one panel")
    for p in panels:
        if not isinstance(p, PanelConfig):
            raise ValueError(f"panels must be PanelConfig objects, got {type(p).__name__}")
        if (p.fpixels, p.spixels) != (instance.fpixels, instance.spixels):
            raise ValueError(f"every panel must have the detector's {instance.fpixels}x{instance.spixels} pixels, "
                             f"panel {p.name or panels.index(p)} has {p.fpixels}x{p.spixels}")
    if instance.curved:
        raise ValueError("curved detector: a detector of panels is a set of flat panels")


@attrs.frozen(kw_only=True)
class DetectorConfig:
    convention: str = attrs.field(validator=_one_of("mosflm", "xds", "adxv", "denzo", "dials", "custom"))
    pivot: str = attrs.field(validator=_one_of("beam", "sample"))
    fpixels: int = attrs.field(validator=_at_least_one)
    spixels: int = attrs.field(validator=_at_least_one)
    pixel_size: float = attrs.field(validator=_positive)
    detsize_f: float
    detsize_s: float
    distance: float = attrs.field(validator=_finite)
    close_distance: float | None = None  # None: derived from distance
    Xbeam: float
    Ybeam: float
    Xclose: float
    Yclose: float
    Fbeam: float
    Sbeam: float
    Fclose: float
    Sclose: float
    fdet: Vec3 = attrs.field(converter=_vec3)
    sdet: Vec3 = attrs.field(converter=_vec3)
    odet: Vec3 = attrs.field(converter=_vec3)
    twotheta_axis: Vec3 = attrs.field(converter=_vec3)
    rotx: float = 0.0
    roty: float = 0.0
    rotz: float = 0.0
    twotheta: float = 0.0
    thickness: float = attrs.field(default=0.0, validator=_non_negative)
    thicksteps: int = attrs.field(default=1, validator=_at_least_one)
    thickstep: float = 0.0
    mu: float = 0.0  # attenuation coefficient, 1/m
    curved: bool = False
    point_pixel: bool = False
    roi: tuple[int, int, int, int] = attrs.field(converter=tuple)  # xmin, xmax, ymin, ymax (inclusive)
    #: (spixels, fpixels) bool, or (panels, spixels, fpixels) with ``panels``
    mask: np.ndarray | None = attrs.field(default=None, eq=False)
    #: the panels, when the detector is given as panels (``nbsim.model.panels``); None: the one panel
    #: the fields above describe.  Every panel has fpixels x spixels pixels; roi applies to each.
    panels: tuple[PanelConfig, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple),
                                                          validator=_check_panels)
    mask_file: str | None = None
    img_file: str | None = None  # SMV file whose header initialised the detector

    @roi.validator
    def _check_roi(self, attribute, value):
        xmin, xmax, ymin, ymax = value
        if xmin > xmax or ymin > ymax:
            raise ValueError(f"roi must have xmin <= xmax and ymin <= ymax, got {value!r}")

    @property
    def n_panels(self) -> int:
        return 1 if self.panels is None else len(self.panels)

    @property
    def thick(self) -> bool:
        """Whether a sensor has thickness (the capture fraction applies)."""
        return self.thickness > 0 if self.panels is None else any(p.thickness > 0 for p in self.panels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(spixels, fpixels) for the one panel of a command line, else (panels, spixels, fpixels)."""
        plane = (self.spixels, self.fpixels)
        return plane if self.panels is None else (len(self.panels), *plane)


@attrs.frozen(kw_only=True)
class CrystalConfig:
    cell: tuple[float, float, float, float, float, float] | None = None  # Å, radians
    reciprocal_matrix: tuple[Vec3, Vec3, Vec3] | None = None  # a*, b*, c* as read from -mat (λ-scaled)
    matrix_file: str | None = None
    misset: Vec3 | None = None  # radians about x, y, z
    misset_random: bool = False
    misset_seed: int = 0
    Na: float = 1.0  # command-line values (before crystal size and the clamp to 1)
    Nb: float = 1.0
    Nc: float = 1.0
    n_cells: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the cell counts rendered
    sample_x: float = 0.0
    sample_y: float = 0.0
    sample_z: float = 0.0
    shape: str = attrs.field(default="square", validator=_one_of("square", "round", "gauss", "tophat"))
    fudge: float = 1.0
    mosaic_spread: float = attrs.field(default=0.0, validator=_non_negative)
    mosaic_domains: int = attrs.field(default=1, validator=_at_least_one)
    mosaic_seed: int = -12345678
    default_F: float = 0.0
    structure_factors: StructureFactors | None = attrs.field(default=None, eq=False)
    interpolate: bool = False
    interpolate_auto: bool = True

    @property
    def hkls(self) -> int:
        return 0 if self.structure_factors is None else self.structure_factors.count


@attrs.frozen(kw_only=True)
class SamplingConfig:
    phi0: float = 0.0
    phistep: float = 0.0
    phisteps: int = attrs.field(default=1, validator=_at_least_one)
    osc: float = 0.0
    spindle_axis: Vec3 = attrs.field(converter=_vec3)
    oversample: int = attrs.field(default=1, validator=_at_least_one)
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    dmin: float = attrs.field(default=0.0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class OutputConfig:
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str | None = "image.pgm"
    noisefile: str | None = "noiseimage.img"
    dumpfile: str = "Fdump.bin"
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc_offset: float = 40.0
    seed: int = 0  # the reference's internal (negated) noise seed
    printout: bool = False
    printout_pixel: tuple[int, int] | None = None  # (fast, slow)
    progress: bool = True


@attrs.frozen(kw_only=True)
class RunConfig:
    """A whole simulation: what to render and what to write."""

    beam: BeamConfig
    detector: DetectorConfig
    crystal: CrystalConfig
    sampling: SamplingConfig
    output: OutputConfig = attrs.field(factory=OutputConfig)
    argv: tuple[str, ...] = ()
    #: nbsim's warnings about flags a reference rule makes ineffective
    warnings: tuple[str, ...] = ()
    #: lines the reference program prints while setting up (before the banner and after)
    setup_notices: tuple[str, ...] = ()
