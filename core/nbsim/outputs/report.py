"""The reference program's console printout, generated from a configuration and its model.

The set-up lines (geometry, cell, sampling, sources, summary) and the result lines
(statistics and files written) follow the reference's wording and ``%g`` formats, so that
tools parsing nanoBragg logs keep working; only the statistics lines are held to the golden
comparison.  The reference's heap-address ``mmap(...)`` line is not reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nbsim.model.build import AVOGADRO, Model
from nbsim.model.config import RunConfig
from nbsim.model.crystal import cell_parameters
from nbsim.outputs.statistics import Statistics
from nbsim.physics.vectors import cross, dot
from nbsim.setup.state import RTD

BANNER = "nanoBragg nanocrystal diffraction simulator - James Holton and Ken Frankel 5-17-17"
SHAPE_NAMES = {"round": "ellipsoidal", "square": "parallelpiped", "gauss": "gaussian", "tophat": "tophat-spot"}


def _vec(v) -> str:
    return "%g %g %g" % tuple(float(x) for x in v)


def setup_lines(config: RunConfig, m: Model) -> list[str]:
    """What the reference prints before rendering (``m`` in float64 for exact figures)."""
    notices = {}
    for section, text in config.setup_notices:
        notices.setdefault(section, []).append(text)
    b, d, c, s, o = config.beam, config.detector, config.crystal, config.sampling, config.output
    g = m.geometry
    out: list[str] = []
    for name in (d.mask_file, d.img_file):
        if name:
            out.append(f"reading {name}")
    out += notices.get("pre", [])
    out.append(BANNER)
    out += notices.get("sampling", [])
    out.append(f"{d.convention} convention selected.")
    out.append("pivoting detector around sample" if d.pivot == "sample" else "pivoting detector around direct beam spot")
    out.append("XDS incident beam: %g %g %g" % (float(dot(g.beam, g.fdet)), float(dot(g.beam, g.sdet)),
                                                  float(dot(g.beam, g.odet))))
    if c.interpolate_auto:
        auto_on = c.Na <= 2 or c.Nb <= 2 or c.Nc <= 2
        out.append("auto-selected tricubic interpolation of structure factors" if auto_on
                   else "auto-selected no interpolation")
    crystal_notices = notices.get("crystal", [])
    out += [n for n in crystal_notices if not n.startswith("random orientation")]
    if c.matrix_file:
        out.append(f"reading {c.matrix_file}")
    out += [n for n in crystal_notices if n.startswith("random orientation")]
    lat = m.lattice
    real, recip, V = lat.real, lat.reciprocal, lat.volume
    cellp = cell_parameters(real, recip, V, 1.0 / V)
    recp = cell_parameters(recip, real, 1.0 / V, V)
    out.append("Unit Cell: %g %g %g %g %g %g" % tuple(cellp))
    out.append("Recp Cell: %g %g %g %g %g %g" % tuple(recp))
    out.append("volume = %g A^3" % float(V))
    out.append("real-space cell vectors (Angstrom):")
    out.append("     %-10s  %-10s  %-10s" % ("a", "b", "c"))
    for i, axis in enumerate("XYZ"):
        out.append("%s: %11.8f %11.8f %11.8f" % (axis, *(float(real[v, i]) for v in range(3))))
    out.append("reciprocal-space cell vectors (Angstrom^-1):")
    out.append("     %-10s  %-10s  %-10s" % ("a_star", "b_star", "c_star"))
    for i, axis in enumerate("XYZ"):
        out.append("%s: %11.8f %11.8f %11.8f" % (axis, *(float(recip[v, i]) for v in range(3))))
    Na, Nb, Nc = c.n_cells
    lengths = [math.sqrt(sum(float(x) ** 2 for x in v)) * 1e-10 for v in real]
    xtal = (lengths[0] * Na, lengths[1] * Nb, lengths[2] * Nc)
    out.append("crystal is %g x %g x %g microns" % tuple(x * 1e6 for x in xtal))
    out += notices.get("oversample", [])
    out.append("approximate MW = %g" % (xtal[0] * xtal[1] * xtal[2] * 1.2e6 * AVOGADRO / (Na * Nb * Nc)))
    sf = c.structure_factors
    if sf is not None and sf.origin == "hkl":
        out.append(f"counting entries in {sf.path}")
        if c.default_F != 0.0:
            out.append("initializing to default_F = %g:" % c.default_F)
            out.append("done initializing:")
        out.append(f"re-reading {sf.path}")
        out.append(f"writing dump file for next time: {o.dumpfile}")
    elif sf is not None and sf.origin == "dump":
        out.append(f"reading Fs from {o.dumpfile}")
    for t in range(d.thicksteps):
        out.append("thick%d = %g um" % (t, d.thickstep * t * 1e6))
    for p in range(s.phisteps):
        out.append("phi%d = %g" % (p, (s.phi0 + s.phistep * p) * RTD))
    src = m.sources
    if b.source_file is None:
        for h, v in src.grid_points:
            out.append("divergence deviation: %g %g" % (h, v))
        for k in range(b.dispsteps):
            out.append("lambda%d = %.15g" % (k, b.wavelength * (1.0 + b.dispstep * k - b.dispersion / 2.0)))
    out.append("  created a total of %d sources:" % len(src.wavelengths))
    for pos, w, lam in zip(src.positions.tolist(), src.weights.tolist(), src.wavelengths.tolist()):
        out.append("%g %g %g   %g %g" % (*pos, w, lam))
    out.append("  created a total of %d mosaic domains" % c.mosaic_domains)
    out.append("  %d initialized hkls (all others =%g)" % (c.hkls, c.default_F))
    out.append("  %s xtal: %.0fx%.0fx%.0f cells" % (SHAPE_NAMES[c.shape], Na, Nb, Nc))
    out.append("  wave=%g meters +/- %g%% in %d steps" % (b.wavelength, b.dispersion * 100, b.dispsteps))
    out.append("  polarization effect disabled" if b.nopolar else "  Kahn polarization factor: %f" % b.polarization)
    if d.curved:
        out.append("  curved detector: all pixels same distance from origin")
    if d.point_pixel:
        out.append("  pixel obliquity effect disabled")
    out.append("  incident fluence: %g photons/m^2" % b.fluence)
    out.append("  distance=%g detsize=%gx%g  pixel=%g meters (%dx%d pixels)"
               % (float(g.distance), d.detsize_f, d.detsize_s, d.pixel_size, d.fpixels, d.spixels))
    out.append("  sensor is %g m thick in %d layers with mu= %g" % (d.thickness, d.thicksteps, d.mu))
    out.append("  Xbeam=%g Ybeam=%g" % (d.Xbeam, d.Ybeam))
    out.append("  Fbeam=%g Sbeam=%g" % (float(g.Fbeam), float(g.Sbeam)))
    out.append("  Xclose=%g Yclose=%g" % (d.Xclose, d.Yclose))
    out.append("  Fclose=%g Sclose=%g" % (float(g.Fclose), float(g.Sclose)))
    out.append("  DIRECTION_OF_DETECTOR_X-AXIS= " + _vec(g.fdet))
    out.append("  DIRECTION_OF_DETECTOR_Y-AXIS= " + _vec(g.sdet))
    out.append("  DIRECTION_OF_DETECTOR_Z-AXIS= " + _vec(g.odet))
    out.append("  INCIDENT_BEAM_DIRECTION= " + _vec(g.beam))
    out.append("  spindle ROTATION_AXIS= " + _vec(m.spindle))
    out.append("  POLARIZATION_PLANE_NORMAL= " + _vec(cross(g.beam, m.polar_vector)))
    out.append("  dials origin= " + _vec(g.dials_origin))
    out.append("  roi: %d < x < %d && %d < y < %d" % d.roi)
    out.append("  hdivrange=%g hdivstep=%g  radians" % (b.hdivrange, b.hdivstep))
    out.append("  vdivrange=%g vdivstep=%g  radians" % (b.vdivrange, b.vdivstep))
    out.append("  %d divergence steps" % (len(src.grid_points) if b.source_file is None else -1))
    out.append("  %d sources" % len(src.wavelengths))
    out.append("  %d mosaic domains over mosaic spread of %g degrees" % (c.mosaic_domains, c.mosaic_spread * RTD))
    out.append("  %d phi steps from %g to %g degrees" % (s.phisteps, s.phi0 * RTD, (s.phi0 + s.osc) * RTD))
    flags = "".join(f" +{k}" for k, on in (("thick", s.oversample_thick), ("polar", s.oversample_polar),
                                           ("omega", s.oversample_omega)) if on)
    out.append("  %dx%d pixel oversample steps%s" % (s.oversample, s.oversample, flags))
    if d.mask is not None:
        out.append(f"  skipping zero-flagged pixels in {d.mask_file}")
    if o.noisefile is not None:
        out += ["", "  noise image paramters:", "  seed: %d" % o.seed, "  water droplet size: %g m" % b.water_size]
    return out


def result_lines(
    config: RunConfig,
    m: Model,
    stats: Statistics,
    omega_sum: float,
    *,
    int_scale: float,
    pgm_scale: float | None,
    noise: tuple[float, int] | None,
    response: Sequence[str] = (),
) -> list[str]:
    """What the reference prints after rendering, in its order."""
    o, d = config.output, config.detector
    out = ["", "solid angle subtended by detector = %g steradian ( %g%% sphere)"
           % (omega_sum / m.steps, 100 * omega_sum / m.steps / 4 / math.pi)]
    out.append("writing %s as %d 4-byte floats" % (o.floatfile, d.n_panels * d.fpixels * d.spixels))
    out.append("max_I = %g  at %g %g" % (stats.max_I, stats.max_x, stats.max_y))
    out.append("mean= %g rms= %g rmsd= %g" % (stats.mean, stats.rms, stats.rmsd))
    out.append("intfile_scale = %g" % int_scale)
    out.append("writing %s as 2-byte integers" % o.intfile)
    if pgm_scale is not None:
        out.append("pgm_scale = %g" % pgm_scale)
        out.append("writing %s as 1-byte integers" % o.pgmfile)
    if response and o.noisefile is not None:  # the recorded image replaces the noise image
        out.append("detector response: %s" % " -> ".join(response))
        out.append("writing %s as 2-byte integers" % o.noisefile)
    elif noise is not None:
        out.append("%.0f photons on noise image (%d overloads)" % noise)
        out.append("writing %s as 2-byte integers" % o.noisefile)
    return out



def interpolation_warning(switch: tuple) -> list[str]:
    """The reference's one-time warning when interpolation leaves the HKL grid."""
    return ["WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: %g,%g,%g,%d,%d,%d " % switch,
            "WARNING: further warnings will not be printed! "]
