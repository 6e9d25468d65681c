"""The reference program's variables after its argument scan, before any set-up rule.

Units are the program's internal ones: metres, radians, photons/m^2; ``nan`` means "not
given" where the program uses NaN, ``-1`` where it uses -1.  Field names follow the C
variables so that ``specs/`` and the reference source can be read side by side.
"""

from __future__ import annotations

import math

import attrs

NAN = math.nan
RTD = 180.0 * (1.0 / math.pi)  # the program's degrees-per-radian constant (180.0*M_1_PI)
DEFAULT_FLUENCE = 125932015286227086360700780544.0


@attrs.define
class ScanState:
    # crystal and structure factors
    matfile: str | None = None
    hklfile: str | None = None
    default_F: float = 0.0
    dumpfile: str = "Fdump.bin"
    stolfile: str | None = None
    sourcefile: str | None = None
    user_cell: bool = False
    cell: list[float] = attrs.Factory(lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    misset: str | tuple[float, float, float] | None = None  # "random" or radians
    Na: float = 1.0
    Nb: float = 1.0
    Nc: float = 1.0
    sample_x: float = 0.0
    sample_y: float = 0.0
    sample_z: float = 0.0
    xtal_shape: str = "square"
    fudge: float = 1.0
    mosaic_spread: float = -1.0
    mosaic_domains: int = -1
    mosaic_seed: int = -12345678
    misset_seed: int | None = None  # None: the start-up time seed, as in the program
    interpolate: int = 2  # 2 = automatic

    # beam
    lambda0: float = 1.0e-10
    fluence: float = DEFAULT_FLUENCE
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    dispersion: float = 0.0
    dispsteps: int = -1
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    polarization: float = 0.0
    nopolar: bool = False
    water_size: float = 0.0

    # detector
    Xbeam: float = NAN
    Ybeam: float = NAN
    Xclose: float = NAN
    Yclose: float = NAN
    ORGX: float = NAN
    ORGY: float = NAN
    pivot: str = "beam"
    convention: str = "mosflm"
    fdet_vector: tuple[float, float, float] = (0.0, 0.0, 1.0)
    sdet_vector: tuple[float, float, float] = (0.0, -1.0, 0.0)
    odet_vector: tuple[float, float, float] = (1.0, 0.0, 0.0)
    beam_vector: tuple[float, float, float] = (1.0, 0.0, 0.0)
    polar_vector: tuple[float, float, float] = (0.0, 0.0, 1.0)
    spindle_vector: tuple[float, float, float] = (0.0, 0.0, 1.0)
    twotheta_axis: tuple[float, float, float] = (0.0, 1.0, 0.0)
    distance: float = 0.1
    close_distance: float = NAN
    detector_mu: float = -1.0
    detector_thick: float = 0.0
    detector_thicksteps: int = -1
    twotheta: float = 0.0
    detector_rotx: float = 0.0
    detector_roty: float = 0.0
    detector_rotz: float = 0.0
    detsize_f: float = 0.1024
    detsize_s: float = 0.1024
    fpixels: int = 0
    spixels: int = 0
    curved_detector: bool = False
    pixel_size: float = 1e-4
    point_pixel: bool = False

    # sampling
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    roi: list[int] = attrs.Factory(lambda: [-1, -1, -1, -1])
    phi0: float = 0.0
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    dmin: float = 0.0

    # outputs and console
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    calculate_noise: bool = True
    write_pgm: bool = True
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc_offset: float = 40.0
    seed: int | None = None  # None: the start-up time seed
    printout: bool = False
    printout_pixel: tuple[int, int] | None = None  # (fast, slow)
    progress: bool = True

    # files whose headers initialise the detector, and the mask pixels
    imgfile: str | None = None
    maskfile: str | None = None
    mask: object | None = None  # numpy uint16 array (slow, fast) when -mask was given
    mask_shape: tuple[int, int] | None = None
    header_twotheta: float | None = None

    # bookkeeping for warnings: flag name -> positions in argv (in order)
    typed: dict[str, list[int]] = attrs.Factory(dict)
    # flags whose value was cancelled by a later flag: (flag, reason)
    cancelled: list[tuple[str, str]] = attrs.Factory(list)
    header_values: dict[str, float] = attrs.Factory(dict)
