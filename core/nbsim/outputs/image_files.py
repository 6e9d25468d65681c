"""The reference program's output images, built in memory (``specs/outputs.md``).

* float image: float32, fast index fastest, host byte order, no header;
* SMV integer image: scale (``-scale``, else 55000/max_I, else 1), ``-adc`` offset, clamp to
  [0, 65535] and floor((v*scale + adc) + 0.5) with the sum rounded to float32 first, as the
  reference's ``floorf`` call does; pixels outside the ROI are 0;
* PGM: ``P5`` header, bytes truncated from min(v*pgm_scale, 255) inside the ROI;
* noise image: a Poisson deviate of every ROI pixel plus the ADC offset, truncated to 16 bits
  with overloads counted;
* miniCBF: the header of a run (`nbsim.io.cbf` writes the file).
"""

from __future__ import annotations

import datetime

import attrs
import numpy as np
import torch

from nbsim.io import cbf, smv


@attrs.frozen
class ImageFile:
    path: str
    data: bytes
    description: str  # what the reference prints after "writing <path> as"


def roi_mask(shape, roi) -> np.ndarray:
    """The ROI of a (slow, fast) image, or of every panel of a (panels, slow, fast) one."""
    xmin, xmax, ymin, ymax = roi
    inside = np.zeros(shape, dtype=bool)
    inside[..., max(ymin, 0): ymax + 1, max(xmin, 0): xmax + 1] = True
    return inside


def stacked(image: np.ndarray) -> np.ndarray:
    """A (panels, slow, fast) image as one (panels * slow, fast) picture, panel after panel:
    how the single-image formats (SMV, PGM) hold a detector of several panels."""
    return image.reshape(-1, image.shape[-1])


def int_scale(requested: float, max_I: float) -> float:
    if requested > 0.0:
        return requested
    return 55000.0 / max_I if max_I > 0.0 else 1.0


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    """NaN pixels (an overflowed image times a scale of 0) become 0, in place: what the
    reference's conversion to an integer type gives on x86, where C leaves it undefined."""
    np.copyto(values, 0.0, where=np.isnan(values))
    return values


def int_pixels(image32: np.ndarray, roi, scale: float, adc: float) -> np.ndarray:
    test = image32.astype(np.float64)  # in place from here: one double-precision image at a time
    with np.errstate(invalid="ignore"):
        test *= scale
    test += adc
    np.clip(_nan_to_zero(test), 0.0, 65535.0, out=test)
    test += 0.5
    rounded = test.astype(np.float32)
    del test
    out = np.floor(rounded, out=rounded).astype(np.uint16)
    out[~roi_mask(image32.shape, roi)] = 0
    return out


def pgm_scale(requested: float, int_scale_used: float, rmsd: float) -> float:
    if requested > 0.0:
        return requested
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else int_scale_used


def pgm_bytes(image32: np.ndarray, roi, scale: float) -> bytes:
    with np.errstate(invalid="ignore"):
        test = np.minimum(_nan_to_zero(image32.astype(np.float64) * scale), 255.0)
    pix = np.trunc(np.maximum(test, 0.0)).astype(np.uint8)
    pix[~roi_mask(image32.shape, roi)] = 0
    pix = stacked(pix)
    spixels, fpixels = pix.shape
    head = "P5\n%d %d\n# pixels scaled by %g\n255\n" % (fpixels, spixels, scale)
    return head.encode("ascii") + pix.tobytes()


def noise_pixels(counts: np.ndarray, roi, adc: float) -> tuple[np.ndarray, float, int]:
    """(pixels, photons, overloads) from Poisson ``counts`` (float64, same shape as the image)."""
    inside = roi_mask(counts.shape, roi)
    photons = float(counts[inside].sum())
    test = _nan_to_zero(counts + adc)
    over = inside & (test > 65535.0)
    test = np.where(over, 65535.0, test)
    out = np.trunc(np.clip(test, 0.0, 65535.0)).astype(np.uint16)
    out[~inside] = 0
    return out, photons, int(over.sum())


def smv_header_items(*, fpixels, spixels, pixel_size, distance, wavelength, Xbeam, Ybeam, Fbeam, Sbeam,
                     detsize_s, dials_origin, ORGX, ORGY, close_distance, phi0, osc, twotheta) -> list:
    rtd = 180.0 * (1.0 / np.pi)
    g = "%g"
    return [
        ("SIZE1", "%d" % fpixels), ("SIZE2", "%d" % spixels),
        ("PIXEL_SIZE", g % (pixel_size * 1000.0)), ("DISTANCE", g % (distance * 1000.0)),
        ("WAVELENGTH", g % (wavelength * 1e10)),
        ("BEAM_CENTER_X", g % (Xbeam * 1000.0)), ("BEAM_CENTER_Y", g % (Ybeam * 1000)),
        ("ADXV_CENTER_X", g % (Fbeam * 1000.0)), ("ADXV_CENTER_Y", g % ((detsize_s - Sbeam) * 1000)),
        ("MOSFLM_CENTER_X", g % ((Sbeam - 0.5 * pixel_size) * 1000.0)),
        ("MOSFLM_CENTER_Y", g % ((Fbeam - 0.5 * pixel_size) * 1000)),
        ("DENZO_X_BEAM", g % ((Sbeam - 0.0 * pixel_size) * 1000.0)),
        ("DENZO_Y_BEAM", g % ((Fbeam - 0.0 * pixel_size) * 1000)),
        ("DIALS_ORIGIN", "%g,%g,%g" % tuple(dials_origin)),
        ("XDS_ORGX", g % ORGX), ("XDS_ORGY", g % ORGY),
        ("CLOSE_DISTANCE", g % (close_distance * 1000.0)),
        ("PHI", g % (phi0 * rtd)), ("OSC_START", g % (phi0 * rtd)), ("OSC_RANGE", g % (osc * rtd)),
        ("TWOTHETA", g % (twotheta * rtd)),
        ("DETECTOR_SN", "000"), ("BEAMLINE", "fake"),
    ]


def smv_header(config, g) -> list:
    """The SMV header items of a run with its placed detector ``g`` (panels stacked: ``stacked``)."""
    d, s = config.detector, config.sampling
    return smv_header_items(
        fpixels=d.fpixels, spixels=d.n_panels * d.spixels, pixel_size=d.pixel_size, distance=float(g.distance),
        wavelength=config.beam.wavelength, Xbeam=d.Xbeam, Ybeam=d.Ybeam, Fbeam=float(g.Fbeam),
        Sbeam=float(g.Sbeam), detsize_s=d.detsize_s, dials_origin=g.dials_origin.tolist(),
        ORGX=float(g.ORGX), ORGY=float(g.ORGY), close_distance=float(g.close_distance),
        phi0=s.phi0, osc=s.osc, twotheta=d.twotheta,
    )


def smv_bytes(items, pixels: np.ndarray) -> bytes:
    return smv.encode(items, pixels)


def normal_to_beam(g) -> bool:
    """Whether the placed detector ``g`` faces the beam (what a miniCBF header can describe)."""
    return abs(float(torch.dot(g.odet, g.beam))) > 1.0 - 1e-12


def cbf_header(config, g, created: str | None = None) -> cbf.CbfHeader:
    """The miniCBF header of a run with its placed detector ``g``, made at ``created`` (ISO 8601;
    default now: a dataset gives a fixed time, so that its files do not depend on when they
    were made)."""
    s, d = config.sampling, config.detector
    return cbf.CbfHeader(
        pixel_size=d.pixel_size, distance=float(g.close_distance), wavelength=config.beam.wavelength,
        beam_fast=float(g.Fbeam), beam_slow=float(g.Sbeam), start_angle=s.phi0, angle_increment=s.osc,
        exposure=config.beam.exposure, thickness=d.thickness,
        created=created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
    )
