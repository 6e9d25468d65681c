"""Detector placement: rotations, two-theta swing, pivot, and the origin vector pix0.

Follows the reference program's set-up (``specs/setup.md``): the detector basis is
rotated about lab x, y, z, then swung by two-theta about its (un-normalised) axis; with the
SAMPLE pivot the near point (Fclose, Sclose) is fixed before rotation, with the BEAM pivot the
direct-beam spot (Fbeam, Sbeam) stays at ``distance`` along the beam.  All quantities are
tensors (metres, radians), differentiable in every continuous input.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from nbsim.model.config import DetectorConfig, PanelConfig, Vec3
from nbsim.physics.vectors import dot, rotate_axis, rotate_xyz

DBL_MIN = sys.float_info.min


def in_dials_frame(v):
    """A vector of nanoBragg's laboratory frame in DIALS' (the reference's "DIALS origin"):
    (x, y, z) -> (z, y, -x), a proper rotation (components: tensors or numbers)."""
    return (v[2], v[1], -v[0])


def from_dials_frame(v):
    """The inverse of :func:`in_dials_frame`."""
    return (-v[2], v[1], v[0])


def _dials_mcstas(v):
    """DIALS' frame <-> the McStas frame of NeXus and CrystFEL (z along the beam, y up): x and z
    reversed, its own inverse."""
    return (-v[0], v[1], -v[2])


def in_mcstas_frame(v):
    """A vector of nanoBragg's laboratory frame in the McStas frame (NeXus, CrystFEL)."""
    return _dials_mcstas(in_dials_frame(v))


def from_mcstas_frame(v):
    """The inverse of :func:`in_mcstas_frame`."""
    return from_dials_frame(_dials_mcstas(v))


@attrs.frozen
class DetectorGeometry:
    """The placed detector.  Vectors are (3,) tensors, lengths in metres."""

    pix0: Tensor  # sample -> outer corner of pixel (0, 0)
    fdet: Tensor
    sdet: Tensor
    odet: Tensor
    beam: Tensor
    ratio: Tensor  # beam · (rotated normal, two-theta excluded)
    distance: Tensor  # close_distance / ratio
    close_distance: Tensor
    Fbeam: Tensor
    Sbeam: Tensor
    Fclose: Tensor
    Sclose: Tensor
    ORGX: Tensor
    ORGY: Tensor
    dials_origin: Tensor  # mm, MOSFLM lab frame as the reference computes it


def place_detector(
    *,
    fdet0: Tensor,
    sdet0: Tensor,
    odet0: Tensor,
    beam: Tensor,
    twotheta_axis: Tensor,
    rotx: Tensor,
    roty: Tensor,
    rotz: Tensor,
    twotheta: Tensor,
    distance: Tensor,
    close_distance: Tensor | None,
    Fbeam: Tensor,
    Sbeam: Tensor,
    Fclose: Tensor,
    Sclose: Tensor,
    pixel_size: Tensor,
    pivot: str,
) -> DetectorGeometry:
    """Rotate the detector and place its origin.

    :param fdet0, sdet0, odet0, beam: unit vectors (3,) before any rotation.
    :param twotheta_axis: (3,) axis of the two-theta swing, used as given (not normalised).
    :param rotx, roty, rotz, twotheta: radians.
    :param distance: metres along the beam; ignored when ``close_distance`` is given.
    :param Fbeam, Sbeam: direct-beam spot along fast/slow (m), used by the BEAM pivot.
    :param Fclose, Sclose: near point along fast/slow (m), used by the SAMPLE pivot.
    :param pivot: ``"beam"`` or ``"sample"``.
    """
    ratio = dot(beam, rotate_xyz(odet0, rotx, roty, rotz))
    ratio = torch.where(ratio == 0, torch.full_like(ratio, DBL_MIN), ratio)
    if close_distance is None:
        close_distance = torch.abs(ratio * distance)
    distance = close_distance / ratio

    def swing(v: Tensor) -> Tensor:
        return rotate_axis(rotate_xyz(v, rotx, roty, rotz), twotheta_axis, twotheta)

    if pivot == "sample":
        pix0 = -Fclose * fdet0 - Sclose * sdet0 + close_distance * odet0
        pix0 = swing(pix0)
    fdet, sdet, odet = swing(fdet0), swing(sdet0), swing(odet0)
    if pivot == "beam":
        pix0 = -Fbeam * fdet - Sbeam * sdet + distance * beam
    return _located(pix0, fdet, sdet, odet, beam, ratio, pixel_size)


def _located(pix0: Tensor, fdet: Tensor, sdet: Tensor, odet: Tensor, beam: Tensor, ratio: Tensor,
             pixel_size: Tensor) -> DetectorGeometry:
    """A placed flat panel's derived quantities: near point, beam spot, distances, XDS origin."""
    Fclose = -dot(pix0, fdet)
    Sclose = -dot(pix0, sdet)
    close_distance = dot(pix0, odet)
    w = close_distance / ratio * beam - pix0
    Fbeam = dot(fdet, w)
    Sbeam = dot(sdet, w)
    distance = close_distance / ratio
    ORGX = Fclose / pixel_size + 0.5
    ORGY = Sclose / pixel_size + 0.5
    dials_origin = 1000.0 * torch.stack(in_dials_frame(pix0))
    return DetectorGeometry(
        pix0=pix0, fdet=fdet, sdet=sdet, odet=odet, beam=beam, ratio=ratio, distance=distance,
        close_distance=close_distance, Fbeam=Fbeam, Sbeam=Sbeam, Fclose=Fclose, Sclose=Sclose,
        ORGX=ORGX, ORGY=ORGY, dials_origin=dials_origin,
    )


#: the detector's continuous parameters (of ``nbsim.model.build.PARAMETERS``)
DETECTOR_PARAMETERS = frozenset(("distance", "close_distance", "beam_center", "detector_rotation", "twotheta",
                                 "pixel_size"))


def detector_values(d: DetectorConfig) -> dict[str, object]:
    """The configuration's values of :data:`DETECTOR_PARAMETERS`."""
    return {"distance": d.distance, "close_distance": d.close_distance, "beam_center": (d.Xbeam, d.Ybeam),
            "detector_rotation": (d.rotx, d.roty, d.rotz), "twotheta": d.twotheta, "pixel_size": d.pixel_size}


def place_panel(d: DetectorConfig, beam: Tensor, value: Callable[[str], Tensor],
                constant: Callable[[object], Tensor]) -> DetectorGeometry:
    """Place the command line's panel ``d``: continuous parameters from ``value(name)``, every
    other number through ``constant``."""
    pixel_size = value("pixel_size")
    Fbeam, Sbeam = _beam_spot(d, value("beam_center"), pixel_size)
    rot = value("detector_rotation")
    Fclose, Sclose = constant(d.Fclose), constant(d.Sclose)
    if d.convention == "custom":
        Fclose, Sclose = Fbeam, Sbeam
    close = value("close_distance") if d.close_distance is not None else None
    return place_detector(
        fdet0=constant(d.fdet), sdet0=constant(d.sdet), odet0=constant(d.odet), beam=beam,
        twotheta_axis=constant(d.twotheta_axis), rotx=rot[0], roty=rot[1], rotz=rot[2], twotheta=value("twotheta"),
        distance=value("distance") if close is None else constant(d.distance), close_distance=close,
        Fbeam=Fbeam, Sbeam=Sbeam, Fclose=Fclose, Sclose=Sclose, pixel_size=pixel_size, pivot=d.pivot,
    )


@functools.lru_cache(maxsize=16)
def placed_detector(d: DetectorConfig, beam_direction: Vec3) -> DetectorGeometry:
    """The command line's panel ``d`` placed for a beam along ``beam_direction``, in float64
    on the CPU: computed once for the set-up rules (``nbsim.setup``), the model and the
    printout (the arguments are frozen configuration values; the tensors are not to be
    modified)."""
    values = detector_values(d)

    def constant(x) -> Tensor:
        return torch.tensor(x, dtype=torch.float64)

    if d.panels is not None:
        return listed_panel(d.panels[0], constant(beam_direction))
    return place_panel(d, constant(beam_direction), lambda name: constant(values[name]), constant)


def listed_panel(p: PanelConfig, beam: Tensor) -> DetectorGeometry:
    """A panel of a detector listed as panels, described as the command line's panel is: the
    placement the headers, the printout and the set-up's rules read (for a list, of panel 0)."""

    def t(x) -> Tensor:
        return torch.tensor(x, dtype=torch.float64)

    normal = t(p.normal)
    ratio = dot(beam, normal)
    ratio = torch.where(ratio == 0, torch.full_like(ratio, DBL_MIN), ratio)
    return _located(t(p.origin), t(p.fast), t(p.slow), normal, beam, ratio, t(p.pixel_size))


def corner_resolution(d: DetectorConfig, beam_direction: Vec3, wavelength: float) -> float:
    """The smallest d-spacing (Å) the detector reaches at ``wavelength`` (m): that of the
    panel corner farthest from the beam (on a flat panel the largest angle is at a corner)."""
    beam = torch.tensor(beam_direction, dtype=torch.float64)
    if d.panels is None:
        g = placed_detector(d, beam_direction)
        panels = [(g.pix0, g.fdet, g.sdet, d.pixel_size, d.fpixels, d.spixels)]
    else:
        panels = [tuple(torch.tensor(v, dtype=torch.float64) for v in (p.origin, p.fast, p.slow))
                  + (p.pixel_size, p.fpixels, p.spixels) for p in d.panels]
    cos_max = 1.0
    for origin, fast, slow, pixel, nf, ns in panels:
        for a in (0.0, nf * pixel):
            for b in (0.0, ns * pixel):
                corner = origin + a * fast + b * slow
                cos_max = min(cos_max, float(dot(corner, beam) / torch.linalg.vector_norm(corner)))
    sin_theta = math.sqrt(max(0.0, (1.0 - cos_max) / 2.0))  # sin of half the scattering angle
    return math.inf if sin_theta == 0.0 else wavelength * 1e10 / (2.0 * sin_theta)


def on_device(g: DetectorGeometry, device: torch.device) -> DetectorGeometry:
    """``g`` with its tensors on ``device``."""
    return DetectorGeometry(**{f.name: getattr(g, f.name).to(device) for f in attrs.fields(DetectorGeometry)})


def _beam_spot(d: DetectorConfig, center: Tensor, pixel_size: Tensor) -> tuple[Tensor, Tensor]:
    """(Fbeam, Sbeam) from the convention's beam centre (Xbeam, Ybeam), as the reference maps them."""
    X, Y = center[0], center[1]
    if d.convention == "mosflm":
        return Y + 0.5 * pixel_size, X + 0.5 * pixel_size
    if d.convention == "denzo":
        return Y + 0.0 * pixel_size, X + 0.0 * pixel_size
    if d.convention == "adxv":
        return X, d.detsize_s - Y
    return X, Y


def beam_center(convention: str, Fbeam: float, Sbeam: float, pixel_size: float,
                detsize_s: float) -> tuple[float, float]:
    """The convention's beam centre (Xbeam, Ybeam) of the beam spot (Fbeam, Sbeam): the inverse
    of :func:`_beam_spot`, for a panel placed by its vectors (a detector file's)."""
    if convention == "mosflm":
        return Sbeam - 0.5 * pixel_size, Fbeam - 0.5 * pixel_size
    if convention == "denzo":
        return Sbeam, Fbeam
    if convention == "adxv":
        return Fbeam, detsize_s - Sbeam
    return Fbeam, Sbeam
