"""Everything the render kernel needs, as tensors on one device and dtype.

:func:`build_model` turns a resolved :class:`~nbsim.model.config.RunConfig` into a :class:`Model`:
the placed detector, the sources, the lattice, the phi angles, the mosaic domains, the
structure-factor grid and the scalar factors.  Continuous parameters can be replaced by
tensors (``params``), for instance ones that require grad; every tensor of the model is then
a differentiable function of them.  The names ``params`` accepts are listed in
``PARAMETERS`` and documented in ``docs/python-api.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import attrs
import numpy as np
import torch
from torch import Tensor

from nbsim.model import panels as panel_set
from nbsim.model.config import RunConfig
from nbsim.model.crystal import Lattice, build_lattice
from nbsim.model.geometry import (
    DETECTOR_PARAMETERS,
    DetectorGeometry,
    detector_values,
    on_device,
    place_panel,
    placed_detector,
)
from nbsim.model.panels import Panels
from nbsim.model.sources import (
    Sources,
    dispersion_wavelengths,
    divergence_grid,
    generated_sources,
    listed_sources,
)
from nbsim.model.spectra import intensity_weights
from nbsim.physics import rng

R_E_SQR = 7.94079248018965e-30  # Thomson cross section, m^2
AVOGADRO = 6.02214179e23
WATER_F = 2.57
WATER_MW = 18.0

#: continuous parameters ``build_model`` accepts as tensors, with their units
PARAMETERS = {
    "cell": "(6,) a, b, c (Å), alpha, beta, gamma (radians)",
    "reciprocal_matrix": "(3, 3) rows a*, b*, c* of a -mat file (λ-scaled, dimensionless)",
    "misset": "(3,) radians about x, y, z (applied even when the configuration has no -misset)",
    "n_cells": "(3,) Na, Nb, Nc (real numbers)",
    "mosaic_spread": "radians (scales the fixed random domain rotations)",
    "phi0": "radians",
    "phistep": "radians",
    "wavelength": "metres (a spectrum's wavelengths scale with it)",
    "dispersion": "fraction (delta-lambda/lambda)",
    "hdivrange": "radians",
    "vdivrange": "radians",
    "distance": "metres along the beam",
    "close_distance": "metres (when the configuration sets it)",
    "beam_center": "(2,) Xbeam, Ybeam in metres, in the convention's own axes",
    "detector_rotation": "(3,) rotx, roty, rotz in radians",
    "twotheta": "radians",
    "pixel_size": "metres",
    "polarization": "Kahn factor",
    "fluence": "photons/m^2",
    "default_F": "structure-factor amplitude",
    "structure_factors": "the HKL grid, same shape as the configuration's",
    "detector_thickness": "metres",
    "attenuation_depth": "metres (1/mu)",
    "fudge": "lattice-shape width factor",
    "panel_shift": "(K, 3) metres added to each listed panel's position (a detector from --detector FILE)",
    "panel_rotation": "(K, 3) radians: each listed panel turned about its centre (lab x, then y, then z)",
}


@attrs.frozen(eq=False)
class Model:
    config: RunConfig
    device: torch.device
    dtype: torch.dtype  # of every tensor here (float64)
    compute_dtype: torch.dtype  # of the sub-evaluations (lattice and structure factors, sums)
    geometry: DetectorGeometry  # the command line's panel, placed
    panels: Panels  # what is rendered: that panel, or the configuration's panels
    sources: Sources
    lattice: Lattice
    base_vectors: Tensor  # (3, 3) rows a, b, c in metres (after misset, before phi/mosaic)
    n_cells: Tensor  # (3,)
    phi: Tensor  # (F,) radians
    spindle: Tensor  # (3,)
    mosaic: Tensor | None  # (M, 3, 3) domain rotations, or None when the spread is 0
    domains: int
    oversample: int
    thicksteps: int  # sensor layers of every panel
    kahn: Tensor
    polar_vector: Tensor
    fudge: Tensor
    default_F: Tensor
    F_grid: Tensor | None  # flat structure-factor grid
    F_shape: tuple[int, int, int] | None
    fluence: Tensor
    I_bg: Tensor
    steps: int
    rendered: Tensor  # (N,) int64 flat indices of rendered pixels, raster order
    anchor: Tensor  # 0 * every parameter: added to the image (zero, not missing, gradients)

    @property
    def n_sources(self) -> int:
        return int(self.sources.wavelengths.shape[0])

    @property
    def phisteps(self) -> int:
        return int(self.phi.shape[0])

    @property
    def passes_per_pixel(self) -> int:
        """Layers x sub-pixels x sources: the passes of a pixel, each summing every orientation."""
        return self.thicksteps * self.oversample * self.oversample * self.n_sources


def reference_stream(config: RunConfig, progress=None) -> tuple[rng.Ran1, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The shared generator after the set-up draws, and the mosaic domains they gave.

    ``progress(done, total)`` follows the mosaic draws where there are many.

    The reference draws the random misset first, then every mosaic domain; the noise image
    continues the same generator (its table matters when the noise seed is positive).
    """
    c = config.crystal
    gen = rng.Ran1()
    if c.misset_random:
        rng.mosaic_rotation_umat(90.0, gen, [c.misset_seed])
    return gen, rng.mosaic_domains(c.mosaic_spread, c.mosaic_domains, gen, [c.mosaic_seed], progress)


def initial_value(config: RunConfig, name: str):
    """The configuration's value of parameter ``name`` (see ``PARAMETERS``), as a float or tuple.

    :raises ValueError: for a parameter the configuration does not have (a cell with -mat
        only, a structure-factor grid without -hkl, a close distance never given).
    """
    b, d, c, s = config.beam, config.detector, config.crystal, config.sampling
    values = {
        "cell": c.cell, "reciprocal_matrix": c.reciprocal_matrix, "misset": c.misset or (0.0, 0.0, 0.0),
        "n_cells": c.n_cells, "mosaic_spread": c.mosaic_spread, "phi0": s.phi0, "phistep": s.phistep,
        "wavelength": b.wavelength, "dispersion": b.dispersion, "hdivrange": b.hdivrange,
        "vdivrange": b.vdivrange, **detector_values(d), "polarization": b.polarization,
        "fluence": b.fluence, "default_F": c.default_F,
        "structure_factors": None if c.structure_factors is None else c.structure_factors.grid,
        "detector_thickness": d.thickness, "attenuation_depth": 1.0 / d.mu if d.mu > 0 else math.inf,
        "fudge": c.fudge,
        "panel_shift": None if d.panels is None else ((0.0, 0.0, 0.0),) * d.n_panels,
        "panel_rotation": None if d.panels is None else ((0.0, 0.0, 0.0),) * d.n_panels,
    }
    if name not in values:
        raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
    if values[name] is None:
        raise ValueError(f"this configuration has no {name} ({PARAMETERS[name]})")
    return values[name]


def build_model(
    config: RunConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    params: Mapping[str, Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Model:
    """Tensors for rendering ``config`` on ``device``, with sub-evaluations computed in ``dtype``.

    Geometry, lattice, sources and Miller indices are always double precision (a float32
    Miller index near 50 is only good to 4e-6, which a sharp lattice factor turns into large
    errors); ``dtype`` is the precision of the lattice factors, structure factors and their
    sums, where single precision is accurate (``nbsim.physics.trig``) and faster.

    :param params: replacements for continuous parameters (see ``PARAMETERS``); each is
        moved to ``device`` and ``dtype`` and used wherever the configuration's value would be.
        A parameter the configuration does not use still gets a gradient: exactly zero.
    :param progress: called as ``progress(done, total)`` while many mosaic domains are drawn.
    """
    device = torch.device(device)
    compute_dtype, dtype = dtype, torch.float64
    params = dict(params or {})
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}; known: {', '.join(PARAMETERS)}")

    def t(value) -> Tensor:
        return torch.as_tensor(value, dtype=dtype, device=device)

    def p(name: str) -> Tensor:
        if name in params:
            return params[name].to(device=device, dtype=dtype)
        return t(initial_value(config, name))

    def scaled(step: float, name: str, configured: float) -> Tensor:
        """A step that keeps its ratio to its range when the range is a parameter."""
        return t(step) * (p(name) / configured) if name in params else t(step)

    b, d, c, s = config.beam, config.detector, config.crystal, config.sampling

    wavelength = p("wavelength")
    beam = t(b.direction)
    polar_vector = t(b.polar_vector)

    # detector
    pixel_size = p("pixel_size")
    if params.keys() & DETECTOR_PARAMETERS:
        if d.panels is not None:
            raise ValueError(f"{', '.join(sorted(params.keys() & DETECTOR_PARAMETERS))}: parameters of the command "
                             "line's detector, and this detector is a list of panels")
        geometry = place_panel(d, beam, p, t)
    else:  # the placement the set-up made (the same function of the same values)
        geometry = on_device(placed_detector(d, b.direction), device)
    # sources
    if b.source_file is not None:
        table = np.concatenate(
            [b.source_file.positions, b.source_file.weights[:, None], b.source_file.wavelengths[:, None]], axis=1
        )
        sources = listed_sources(table=t(table), beam=beam, wavelength=wavelength,
                                 source_distance=b.source_distance)
    else:
        hrange = p("hdivrange") if b.hdivrange > 0 else t(0.0)
        vrange = p("vdivrange") if b.vdivrange > 0 else t(0.0)
        line_weights = None
        if b.spectrum is not None:
            lines = t(b.spectrum.wavelengths)
            if "wavelength" in params:  # the beam's (mean) wavelength varied: the spectrum keeps its shape
                lines = lines * (wavelength / b.wavelength)
            relative = intensity_weights(b.spectrum.weights)
            line_weights = None if relative is None else t(relative)
        else:
            dispersion = p("dispersion") if b.dispersion > 0 else t(0.0)
            dispstep = scaled(b.dispstep, "dispersion", b.dispersion) if b.dispersion > 0 else t(b.dispstep)
            lines = dispersion_wavelengths(wavelength, dispersion, dispstep, b.dispsteps)
        kept = divergence_grid(b.hdivsteps, b.hdivrange, b.hdivstep, b.vdivsteps, b.vdivrange, b.vdivstep,
                               b.round_div)
        sources = generated_sources(
            kept=kept, beam=beam, polar=polar_vector, wavelengths=lines,
            hdivrange=hrange, hdivstep=scaled(b.hdivstep, "hdivrange", b.hdivrange) if b.hdivrange > 0
            else t(b.hdivstep), hdivsteps=b.hdivsteps,
            vdivrange=vrange, vdivstep=scaled(b.vdivstep, "vdivrange", b.vdivrange) if b.vdivrange > 0
            else t(b.vdivstep), vdivsteps=b.vdivsteps, line_weights=line_weights,
            source_distance=b.source_distance,
        )

    # crystal
    cell = p("cell") if c.cell is not None else None
    matrix = p("reciprocal_matrix") if c.reciprocal_matrix is not None else None
    misset = p("misset") if (c.misset is not None or "misset" in params) else None
    lattice = build_lattice(cell=cell, matrix=matrix, wavelength=wavelength, misset=misset)
    base_vectors = lattice.real * 1e-10
    n_cells = p("n_cells")
    phi = p("phi0") + p("phistep") * torch.arange(s.phisteps, dtype=dtype, device=device)

    mosaic = None
    if c.mosaic_spread > 0.0:
        umats, axes, angles = reference_stream(config, progress)[1]
        if "mosaic_spread" in params:
            # the same random axes and angle fractions, scaled by the (differentiable) spread
            mosaic = axis_angle_matrices(t(axes), t(angles) * (p("mosaic_spread") / c.mosaic_spread))
        else:
            mosaic = t(umats)

    # structure factors
    F_grid = F_shape = None
    if c.structure_factors is not None:
        grid = p("structure_factors")
        F_shape = tuple(grid.shape)
        F_grid = grid.reshape(-1)

    oversample = s.oversample
    fluence = p("fluence")
    if d.thickness > 0:
        thickness = p("detector_thickness")
        thickstep = scaled(d.thickstep, "detector_thickness", d.thickness)
    else:
        thickness, thickstep = t(d.thickness), t(d.thickstep)
    mu = 1.0 / p("attenuation_depth") if ("attenuation_depth" in params and d.mu > 0) else t(d.mu)
    if d.panels is None:
        panels = panel_set.from_geometry(geometry, pixel_size=pixel_size, fpixels=d.fpixels, spixels=d.spixels,
                                         thickness=thickness, thickstep=thickstep, mu=mu)
    else:
        panels = panel_set.from_config(d.panels, thicksteps=d.thicksteps, device=device, dtype=dtype)
        if params.keys() & {"panel_shift", "panel_rotation"}:
            panels = panel_set.moved(panels, p("panel_shift"), p("panel_rotation"))
    w = b.water_size
    I_bg = WATER_F * WATER_F * R_E_SQR * fluence * w * w * w * 1e6 * AVOGADRO / WATER_MW
    steps = len(sources.wavelengths) * c.mosaic_domains * s.phisteps * oversample * oversample
    kahn, fudge, default_F = p("polarization"), p("fudge"), p("default_F")
    # every parameter reaches the image, so that one the configuration (or a plugin) does not
    # use gets an exact zero gradient instead of none
    anchor = sum((0.0 * params[k].to(device=device, dtype=dtype).sum() for k in params), t(0.0))
    return Model(
        config=config, device=device, dtype=dtype, compute_dtype=compute_dtype, geometry=geometry, panels=panels,
        sources=sources, lattice=lattice, base_vectors=base_vectors, n_cells=n_cells, phi=phi,
        spindle=t(s.spindle_axis), mosaic=mosaic, domains=c.mosaic_domains, oversample=oversample,
        thicksteps=d.thicksteps, kahn=kahn, polar_vector=polar_vector, fudge=fudge, default_F=default_F,
        F_grid=F_grid, F_shape=F_shape, fluence=fluence, I_bg=I_bg, steps=steps,
        rendered=panel_set.rendered_pixels(config, device), anchor=anchor,
    )


def axis_angle_matrices(axes: Tensor, angles: Tensor) -> Tensor:
    """(M, 3, 3) rotations by ``angles`` about unit ``axes`` (the reference's formula)."""
    c = torch.cos(angles)[:, None, None]
    s = torch.sin(angles)[:, None, None]
    outer = axes[:, :, None] * axes[:, None, :]
    zero = torch.zeros_like(axes[:, 0])
    cross = torch.stack((
        torch.stack((zero, -axes[:, 2], axes[:, 1]), -1),
        torch.stack((axes[:, 2], zero, -axes[:, 0]), -1),
        torch.stack((-axes[:, 1], axes[:, 0], zero), -1),
    ), dim=-2)
    eye = torch.eye(3, dtype=axes.dtype, device=axes.device)
    return c * eye + (1 - c) * outer + s * cross
