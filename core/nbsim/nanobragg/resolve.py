"""The reference program's set-up rules: from the scan state to a :class:`RunConfig`.

The phases run in the reference order (``specs/setup.md``): detector size, fluence
and sample clipping, beam-centre defaults, the convention block (which forces the pivot),
vector normalisation, the structure-factor and crystal checks, the sampling auto-selection,
the detector placement, the interpolation switch, the crystal, cell counts and
oversampling, structure factors, sources and mosaic domains.  Values are computed with the
same double-precision operations as the reference.

Where a reference rule makes a typed flag ineffective, nbsim follows the rule and adds a
warning naming the flag (``RunConfig.warnings``).  Lines the reference prints while setting
up are kept in ``RunConfig.setup_notices`` as (section, text) for the printout.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import attrs
import numpy as np
import torch

from nbsim import rng
from nbsim.config import (
    BeamConfig,
    CrystalConfig,
    DetectorConfig,
    OutputConfig,
    RunConfig,
    SamplingConfig,
    SourceList,
)
from nbsim.crystal import build_lattice
from nbsim.errors import InputError, UsageError
from nbsim.geometry import place_detector
from nbsim.io import fdump, hkl, matrix, sourcefile
from nbsim.nanobragg.flags import UNUSED_BY_NANOBRAGG
from nbsim.nanobragg.parser import parse_argv
from nbsim.nanobragg.state import RTD, ScanState
from nbsim.vectors import cross, norm, unitize

CONVENTION_VECTORS = {
    # beam, fdet, sdet, odet, twotheta axis, polar, spindle
    "adxv": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "mosflm": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "denzo": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "xds": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "dials": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
}
FORCED_PIVOT = {"adxv": "beam", "mosflm": "beam", "denzo": "beam", "xds": "sample", "dials": "sample"}


def config_from_argv(argv: Sequence[str], *, cwd: str | None = None) -> RunConfig:
    """Parse and resolve a nanoBragg command line (without the program name)."""
    return resolve(parse_argv(argv), argv=tuple(argv), cwd=cwd)


@attrs.define
class _Notes:
    warnings: list[str] = attrs.Factory(list)
    notices: list[tuple[str, str]] = attrs.Factory(list)

    def warn(self, flag: str, text: str) -> None:
        self.warnings.append(f"{flag}: {text}")

    def notice(self, section: str, text: str) -> None:
        self.notices.append((section, text))


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


def resolve(st: ScanState, *, argv: Sequence[str] = (), cwd: str | None = None) -> RunConfig:
    notes = _Notes()
    typed = st.typed
    cwd = cwd or os.getcwd()

    def typed_flag(*names: str) -> bool:
        return any(n in typed for n in names)

    for name in sorted(UNUSED_BY_NANOBRAGG & set(typed)):
        notes.warn(name, "read but never used by nanoBragg; it has no effect")
    for flag, reason in st.cancelled:
        notes.warn(flag, reason)

    # detector size
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
    if typed_flag("-detsize", "-detsize_f", "-detsize_s") and (fpixels or spixels):
        notes.warn("-detsize", "ignored where the pixel count is given (by -detpixels or an -img/-mask header)")
    fpixels = math.ceil(detsize_f / pixel - 0.5)
    spixels = math.ceil(detsize_s / pixel - 0.5)
    if fpixels < 1 or spixels < 1:
        raise UsageError(f"-detsize must give at least one pixel, got {fpixels}x{spixels} pixels")

    # fluence and sample clipping
    fluence, flux, exposure, beamsize = st.fluence, st.flux, st.exposure, st.beamsize
    sample_x, sample_y, sample_z = st.sample_x, st.sample_y, st.sample_z
    if flux != 0.0 and exposure > 0.0 and beamsize >= 0:
        if beamsize == 0:
            raise UsageError("-beamsize must be positive to turn -flux into a fluence, got 0")
        fluence = flux * exposure / beamsize / beamsize
        if typed_flag("-fluence"):
            notes.warn("-fluence", "overridden by -flux, -exposure and -beamsize")
    if beamsize >= 0:
        if beamsize < sample_y:
            notes.notice("pre", "WARNING: clipping sample (%g m high) with beam (%g m)" % (sample_y, beamsize))
            sample_y = beamsize
        if beamsize < sample_z:
            notes.notice("pre", "WARNING: clipping sample (%g m wide) with beam (%g m)" % (sample_z, beamsize))
            sample_z = beamsize
    if exposure > 0.0:
        flux = fluence / exposure * beamsize * beamsize
    if not st.lambda0 > 0:
        if max(typed.get("-energy", [-1])) > max(typed.get("-lambda", [-1])):  # the last of the two set it
            raise UsageError(f"-energy must be positive, got {12398.42 / (st.lambda0 * 1e10):g}")
        raise UsageError(f"-lambda must be positive, got {st.lambda0 * 1e10:g}")

    # beam-centre defaults
    Fclose = (st.ORGX - 0.5) * pixel if not math.isnan(st.ORGX) else math.nan
    Sclose = (st.ORGY - 0.5) * pixel if not math.isnan(st.ORGY) else math.nan
    if math.isnan(Fclose):
        Fclose = (detsize_f - 0 * pixel) / 2.0
    if math.isnan(Sclose):
        Sclose = (detsize_s + 0 * pixel) / 2.0
    Xclose = Fclose if math.isnan(st.Xclose) else st.Xclose
    Yclose = Sclose if math.isnan(st.Yclose) else st.Yclose
    roi = list(st.roi)
    roi = [roi[0] if roi[0] >= 0 else 0, roi[1] if roi[1] >= 0 else fpixels,
           roi[2] if roi[2] >= 0 else 0, roi[3] if roi[3] >= 0 else spixels]
    if roi[0] > roi[1] or roi[2] > roi[3]:
        raise UsageError(f"-roi must have xmin <= xmax and ymin <= ymax, got {' '.join(map(str, st.roi))}")

    # convention block
    conv = st.convention
    Xbeam, Ybeam = st.Xbeam, st.Ybeam
    pivot = st.pivot
    if conv == "custom":
        beam_v, fdet, sdet, odet = st.beam_vector, st.fdet_vector, st.sdet_vector, st.odet_vector
        tt_axis, polar_v, spindle = st.twotheta_axis, st.polar_vector, st.spindle_vector
        if math.isnan(Xbeam):
            Xbeam = Xclose
        if math.isnan(Ybeam):
            Ybeam = Yclose
        Fbeam, Sbeam = Xbeam, Ybeam
        Fclose, Sclose = Xbeam, Ybeam
    else:
        beam_v, fdet, sdet, odet, tt_axis, polar_v, spindle = CONVENTION_VECTORS[conv]
        if conv == "adxv":
            Xbeam = (detsize_f + pixel) / 2.0 if math.isnan(Xbeam) else Xbeam
            Ybeam = (detsize_s - pixel) / 2.0 if math.isnan(Ybeam) else Ybeam
            Fbeam, Sbeam = Xbeam, detsize_s - Ybeam
        elif conv in ("mosflm", "denzo"):
            Xbeam = (detsize_s + pixel) / 2.0 if math.isnan(Xbeam) else Xbeam
            Ybeam = (detsize_f + pixel) / 2.0 if math.isnan(Ybeam) else Ybeam
            half = 0.5 if conv == "mosflm" else 0.0
            Fbeam, Sbeam = Ybeam + half * pixel, Xbeam + half * pixel
        else:  # xds, dials
            Xbeam = Xclose if math.isnan(Xbeam) else Xbeam
            Ybeam = Yclose if math.isnan(Ybeam) else Ybeam
            Fbeam, Sbeam = Xbeam, Ybeam
        forced = FORCED_PIVOT[conv]
        if typed_flag("-pivot") and st.pivot != forced:
            notes.warn("-pivot", f"ignored: the {conv.upper()} convention always pivots about the "
                                 f"{'direct-beam spot' if forced == 'beam' else 'sample'}")
        pivot = forced
        if conv in ("xds", "dials") and typed_flag("-Xbeam", "-Ybeam"):
            notes.warn("-Xbeam" if typed_flag("-Xbeam") else "-Ybeam",
                       f"does not move the detector under the {conv.upper()} convention (it only sets "
                       "BEAM_CENTER_X/Y in the header); use -ORGX/-ORGY")
        if conv in ("mosflm", "denzo", "adxv"):
            for f in ("-ORGX", "-ORGY", "-Xclose", "-Yclose"):
                if typed_flag(f):
                    notes.warn(f, f"has no effect under the {conv.upper()} convention")
        else:
            for f in ("-Xclose", "-Yclose"):
                if typed_flag(f):
                    notes.warn(f, f"has no effect on the image under the {conv.upper()} convention")
    if typed_flag("-pix0_vector"):
        notes.warn("-pix0_vector", "its value is ignored (nanoBragg recomputes the detector origin); "
                                   "it only selects the custom convention")

    # vector normalisation
    beam_v = _unit(beam_v, "-beam_vector")
    fdet = _unit(fdet, "-fdet_vector")
    sdet = _unit(sdet, "-sdet_vector")
    odet_t = torch.tensor(odet, dtype=torch.float64)
    odet_u, odet_mag = unitize(odet_t)
    if float(odet_mag) != 1.0:
        notes.notice("pre", "WARNING: auto-generating odet_vector")
        odet_u, _ = unitize(cross(torch.tensor(fdet, dtype=torch.float64), torch.tensor(sdet, dtype=torch.float64)))
    odet = tuple(odet_u.tolist())
    polar_v = _unit(polar_v, "-polar_vector")
    spindle = _unit(spindle, "-spindle_axis")
    tt_axis = tuple(float(x) for x in tt_axis)
    if typed_flag("-twotheta_axis") and abs(math.sqrt(sum(x * x for x in tt_axis)) - 1.0) > 1e-12:
        notes.warn("-twotheta_axis", "is not a unit vector; nanoBragg uses it as given, which scales "
                                     "and shears the detector when -twotheta is not 0")

    # structure factors and crystal must exist
    dump_path = os.path.join(cwd, st.dumpfile)
    use_dump = st.hklfile is None and os.path.exists(dump_path)
    if st.hklfile is None and not use_dump and st.default_F == 0.0:
        raise UsageError("no structure factors: give -hkl FILE or -default_F F "
                         f"(no {st.dumpfile} cache in the working directory)")
    if st.matfile is None and st.cell[0] == 0.0:
        raise UsageError("no crystal: give -cell a b c alpha beta gamma or -mat FILE")

    # sampling auto-selection
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
                    notes.warn("-phisteps", "ignored: with -phistep and no -osc nanoBragg uses 2 steps")
                osc, phisteps = phistep, 2
        elif phistep < 0.0:
            phistep = osc / phisteps
    if phisteps < 1:
        raise UsageError(f"-osc and -phistep give no phi steps (osc {osc * RTD:g}, step {phistep * RTD:g})")

    hdivsteps, hdivrange, hdivstep = _auto_steps(st.hdivsteps, st.hdivrange, st.hdivstep, count_only_range=1.0)
    vdivsteps, vdivrange, vdivstep = _auto_steps(st.vdivsteps, st.vdivrange, st.vdivstep, count_only_range=1.0)
    dispsteps, dispersion, dispstep = _auto_steps(st.dispsteps, st.dispersion, -1.0, count_only_range=1.0)

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
        notes.notice("sampling", "WARNING: setting detector attenuation depth to %g m" % mu)

    mosaic_domains, mosaic_spread = st.mosaic_domains, st.mosaic_spread
    if mosaic_domains <= 0:
        if mosaic_spread < 0.0:
            mosaic_domains, mosaic_spread = 1, 0.0
        elif mosaic_spread == 0.0:
            mosaic_domains = 1
        else:
            notes.notice("sampling", "WARNING: finite mosaicity with only one domain! upping to 10 mosaic domains")
            mosaic_domains = 10
    else:
        if mosaic_spread < 0.0:
            notes.notice("sampling", "WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
            mosaic_spread, mosaic_domains = 0.0, 1
        elif mosaic_spread == 0.0:
            notes.notice("sampling", "WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
            mosaic_domains = 1

    hdivsteps, hdivrange, hdivstep = _sanity(hdivsteps, hdivrange, hdivstep)
    vdivsteps, vdivrange, vdivstep = _sanity(vdivsteps, vdivrange, vdivstep)
    dispsteps_before = dispsteps
    dispsteps, dispersion, dispstep = _sanity(dispsteps, dispersion, dispstep)
    if typed_flag("-dispsteps") and dispersion == 0.0 and dispsteps_before >= 1 and st.dispersion == 0.0:
        notes.warn("-dispsteps", "has no effect without -dispersion (nanoBragg then uses one wavelength)")
    thicksteps, thick, thickstep = _sanity(thicksteps, thick, thickstep)

    # detector placement (needed for the reported distance and the oversampling rule)
    close_distance = None if math.isnan(st.close_distance) else st.close_distance
    if close_distance is not None and typed_flag("-distance"):
        source = "-close_distance" if typed_flag("-close_distance") else "the -img/-mask header's CLOSE_DISTANCE"
        notes.warn("-distance", f"ignored because {source} is given")
    # a detector plane through the sample divides every pixel's distance by zero (nanoBragg: NaN images)
    if close_distance == 0.0:
        source = "-close_distance" if typed_flag("-close_distance") else "the -img/-mask header's CLOSE_DISTANCE"
        raise UsageError(f"{source} must not be 0: the detector plane would pass through the sample")
    if close_distance is None and st.distance == 0.0:
        source = "-distance" if typed_flag("-distance") else "the -img/-mask header's DISTANCE"
        raise UsageError(f"{source} must not be 0: the detector would pass through the sample")
    if st.header_twotheta not in (None, 0.0):
        notes.warn("-img" if st.imgfile else "-mask",
                   f"the header's TWOTHETA={st.header_twotheta:g} is ignored, as nanoBragg ignores it")

    def t64(x):
        return torch.tensor(x, dtype=torch.float64)

    geometry = place_detector(
        fdet0=t64(fdet), sdet0=t64(sdet), odet0=t64(odet), beam=t64(beam_v), twotheta_axis=t64(tt_axis),
        rotx=t64(st.detector_rotx), roty=t64(st.detector_roty), rotz=t64(st.detector_rotz),
        twotheta=t64(st.twotheta), distance=t64(st.distance),
        close_distance=None if close_distance is None else t64(close_distance),
        Fbeam=t64(Fbeam), Sbeam=t64(Sbeam), Fclose=t64(Fclose), Sclose=t64(Sclose), pixel_size=t64(pixel),
        pivot=pivot,
    )

    # interpolation switch (before crystal size and the clamp to 1)
    interpolate_auto = st.interpolate == 2
    interpolate = (st.Na <= 2 or st.Nb <= 2 or st.Nc <= 2) if interpolate_auto else bool(st.interpolate)

    # crystal
    cell = None
    if st.user_cell:
        a, b, c, al, be, ga = st.cell
        b = a if b <= 0.0 else b
        c = a if c <= 0.0 else c
        al = math.pi / 2 if al <= 0.0 else al
        be = math.pi / 2 if be <= 0.0 else be
        ga = math.pi / 2 if ga <= 0.0 else ga
        cell = (a, b, c, al, be, ga)
    recip_matrix = None
    if st.matfile is not None:
        recip_matrix = matrix.read(st.matfile)
    misset = st.misset
    misset_random = misset == "random"
    start_seed = -int(time.time())
    misset_seed = st.misset_seed if st.misset_seed is not None else start_seed
    if misset_random:
        u = rng.mosaic_rotation_umat(90.0, rng.Ran1(), [misset_seed])
        misset = rng.umat2misset(u)
        notes.notice("crystal", "random orientation misset angles: %f %f %f deg"
                     % tuple(x * RTD for x in misset))
    elif typed_flag("-misset_seed"):
        notes.warn("-misset_seed", "has no effect without -misset random")
    lattice = build_lattice(
        cell=None if cell is None else t64(cell),
        matrix=None if recip_matrix is None else t64(recip_matrix),
        wavelength=t64(st.lambda0),
        misset=None if misset is None else t64(misset),
    )
    for text in lattice.notices:
        notes.notice("crystal", text)

    lengths_m = [float(norm(v * 1e-10)) for v in lattice.real]
    Na, Nb, Nc = st.Na, st.Nb, st.Nc
    if sample_x > 0:
        Na = math.ceil(sample_x / lengths_m[0])
    if sample_y > 0:
        Nb = math.ceil(sample_y / lengths_m[1])
    if sample_z > 0:
        Nc = math.ceil(sample_z / lengths_m[2])
    Na, Nb, Nc = (max(float(n), 1.0) for n in (Na, Nb, Nc))
    xtal = (lengths_m[0] * Na, lengths_m[1] * Nb, lengths_m[2] * Nc)
    xtalsize_max = max(xtal)
    reciprocal_pixel = st.lambda0 * float(geometry.distance) / pixel
    recommended = math.ceil(3.0 * xtalsize_max / reciprocal_pixel)
    recommended = max(recommended, 1)
    oversample = st.oversample
    if oversample <= 0:
        oversample = recommended
        notes.notice("oversample", "auto-selected %d-fold oversampling" % oversample)
    if oversample < recommended:
        notes.notice("oversample", "WARNING: maximum dimension of sample is %g A" % (xtalsize_max * 1e10))
        notes.notice("oversample", "         but reciprocal pixel size is %g A" % (reciprocal_pixel * 1e10))
        notes.notice("oversample", "         intensity may vary significantly across a pixel!")
        notes.notice("oversample", "         recommend -oversample %d to work around this" % recommended)

    # structure factors
    sf = None
    if st.hklfile is not None:
        sf = hkl.read(st.hklfile, st.default_F)
    elif use_dump:
        try:
            sf = fdump.read(dump_path)
        except fdump.CacheError as exc:
            if typed_flag("-dump"):
                raise
            # the user never named the file: nanoBragg reads the cache a previous -hkl run left
            raise InputError(f"{dump_path}, the structure-factor cache nanoBragg reads when no -hkl is given, "
                             f"is unusable ({exc.reason}): remove it or give -hkl FILE") from None
        notes.warn("-hkl", f"not given: reading structure factors from the cache {dump_path}")
    hkls = 0 if sf is None else sf.count
    if hkls == 0:
        interpolate = False
    if st.stolfile is not None:
        sourcefile.read(st.stolfile, flag="-stol", columns=2)

    if st.xtal_shape == "square" and typed_flag("-fudge"):
        notes.warn("-fudge", "has no effect on the square (default) crystal shape")

    # sources
    source_list = None
    if st.sourcefile is not None:
        table = sourcefile.read(st.sourcefile)
        source_list = SourceList(positions=table[:, :3].copy(), weights=table[:, 3].copy(),
                                 wavelengths=table[:, 4].copy())
        for f in ("-divergence", "-hdivrange", "-vdivrange", "-hdivstep", "-vdivstep", "-hdivsteps",
                  "-vdivsteps", "-divsteps", "-dispersion", "-dispsteps"):
            if typed_flag(f):
                notes.warn(f, "ignored because -sourcefile lists the sources")

    # mask
    mask = None
    if st.mask is not None:
        if st.mask.shape != (spixels, fpixels):
            raise InputError(
                f"-mask: {st.maskfile} is {st.mask.shape[1]}x{st.mask.shape[0]} pixels but the detector is "
                f"{fpixels}x{spixels}"
            )
        mask = np.asarray(st.mask) != 0

    seed = st.seed if st.seed is not None else start_seed

    try:
        beam = BeamConfig(
            wavelength=st.lambda0, fluence=fluence, flux=flux, exposure=exposure, beamsize=beamsize,
            dispersion=dispersion, dispsteps=dispsteps, dispstep=dispstep,
            hdivrange=hdivrange, hdivstep=hdivstep, hdivsteps=hdivsteps,
            vdivrange=vdivrange, vdivstep=vdivstep, vdivsteps=vdivsteps, round_div=st.round_div,
            source_file=source_list, direction=beam_v, polar_vector=polar_v,
            polarization=st.polarization, nopolar=st.nopolar, water_size=st.water_size,
        )
        detector = DetectorConfig(
            convention=conv, pivot=pivot, fpixels=fpixels, spixels=spixels, pixel_size=pixel,
            detsize_f=detsize_f, detsize_s=detsize_s, distance=st.distance, close_distance=close_distance,
            Xbeam=Xbeam, Ybeam=Ybeam, Xclose=Xclose, Yclose=Yclose, Fbeam=Fbeam, Sbeam=Sbeam,
            Fclose=Fclose, Sclose=Sclose, fdet=fdet, sdet=sdet, odet=odet, twotheta_axis=tt_axis,
            rotx=st.detector_rotx, roty=st.detector_roty, rotz=st.detector_rotz, twotheta=st.twotheta,
            thickness=thick, thicksteps=thicksteps, thickstep=thickstep, mu=mu,
            curved=st.curved_detector, point_pixel=st.point_pixel, roi=tuple(roi), mask=mask,
            mask_file=st.maskfile, img_file=st.imgfile,
        )
        crystal = CrystalConfig(
            cell=cell, reciprocal_matrix=recip_matrix, matrix_file=st.matfile, misset=None if misset is None else tuple(misset),
            misset_random=misset_random, misset_seed=misset_seed, Na=st.Na, Nb=st.Nb, Nc=st.Nc,
            n_cells=(Na, Nb, Nc), sample_x=sample_x, sample_y=sample_y, sample_z=sample_z,
            shape=st.xtal_shape, fudge=st.fudge, mosaic_spread=mosaic_spread, mosaic_domains=mosaic_domains,
            mosaic_seed=st.mosaic_seed, default_F=st.default_F, structure_factors=sf,
            interpolate=interpolate, interpolate_auto=interpolate_auto,
        )
        sampling = SamplingConfig(
            phi0=st.phi0, phistep=phistep, phisteps=phisteps, osc=osc, spindle_axis=spindle,
            oversample=oversample, oversample_thick=st.oversample_thick, oversample_polar=st.oversample_polar,
            oversample_omega=st.oversample_omega, dmin=st.dmin,
        )
        output = OutputConfig(
            floatfile=st.floatfile, intfile=st.intfile, pgmfile=st.pgmfile if st.write_pgm else None,
            noisefile=st.noisefile if st.calculate_noise else None, dumpfile=st.dumpfile,
            intfile_scale=st.intfile_scale, pgm_scale=st.pgm_scale, adc_offset=st.adc_offset, seed=seed,
            printout=st.printout, printout_pixel=st.printout_pixel, progress=st.progress,
        )
        return RunConfig(beam=beam, detector=detector, crystal=crystal, sampling=sampling, output=output,
                         argv=tuple(argv), warnings=tuple(notes.warnings), setup_notices=tuple(notes.notices))
    except ValueError as exc:  # a validator of the configuration classes: name the flag
        field = str(exc).split(" ", 1)[0]
        raise UsageError(f"{FIELD_FLAGS.get(field, field)}: {exc}") from None


#: the flag behind each validated configuration field, for error messages
FIELD_FLAGS = {"fluence": "-fluence", "water_size": "-water", "dispersion": "-dispersion", "thickness": "-detector_thick",
               "mosaic_spread": "-mosaic", "dmin": "-dmin", "wavelength": "-lambda", "pixel_size": "-pixel",
               "distance": "-distance", "roi": "-roi", "fpixels": "-detpixels", "spixels": "-detpixels"}
