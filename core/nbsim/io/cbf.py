"""Pilatus-style miniCBF images (written with fabio): byte-offset compressed 32-bit counts
under the ``PILATUS_1.2`` header that DIALS and XDS read (``specs/outputs.md``)."""

from __future__ import annotations

import math
import os
import tempfile

import attrs
import numpy as np


@attrs.frozen(kw_only=True)
class CbfHeader:
    """What the miniCBF header says of the experiment (SI units, angles in radians)."""

    pixel_size: float
    distance: float  # sample to detector plane, along its normal
    wavelength: float
    beam_fast: float  # direct-beam spot from the outer corner of pixel (0, 0), along fast (m)
    beam_slow: float
    start_angle: float
    angle_increment: float
    exposure: float
    thickness: float  # sensor thickness (m), 0 if none
    created: str  # ISO date and time

    def lines(self) -> list[str]:
        deg = math.degrees
        lines = [
            "# Detector: nbsim simulated detector, S/N 0",
            f"# {self.created}",
            f"# Pixel_size {self.pixel_size:.6g} m x {self.pixel_size:.6g} m",
            f"# Silicon sensor, thickness {self.thickness:.6f} m",
            f"# Exposure_time {self.exposure:.6g} s",
            f"# Exposure_period {self.exposure:.6g} s",
            "# Count_cutoff 1048576 counts",
            f"# Wavelength {self.wavelength * 1e10:.6f} A",
            f"# Detector_distance {self.distance:.6f} m",
            f"# Beam_xy ({self.beam_fast / self.pixel_size:.2f}, {self.beam_slow / self.pixel_size:.2f}) pixels",
            f"# Start_angle {deg(self.start_angle):.4f} deg.",
            f"# Angle_increment {deg(self.angle_increment):.4f} deg.",
            f"# Phi {deg(self.start_angle):.4f} deg.",
            "# Oscillation_axis X, CW",
        ]
        return lines


def encode(header: CbfHeader, counts: np.ndarray) -> bytes:
    """The miniCBF file of (slow, fast) ``counts`` (stored as signed 32-bit integers)."""
    from fabio.cbfimage import CbfImage  # imported here: only runs that write a CBF pay for it

    image = CbfImage(data=np.ascontiguousarray(counts, dtype=np.int32))
    image.header["_array_data.header_convention"] = "PILATUS_1.2"
    image.header["_array_data.header_contents"] = "\r\n".join(header.lines())
    # fabio writes to a file name: write it in a private directory and hand back the bytes, so
    # that the run writes all its files together (nbsim.io.atomic)
    with tempfile.TemporaryDirectory(prefix="nbsim-cbf-") as scratch:
        path = os.path.join(scratch, "image.cbf")
        image.write(path)
        with open(path, "rb") as fh:
            return fh.read()
