"""A detector as a list of flat panels, and pixel indices across them.

Every engine renders a :class:`Panels`: K panels of equal pixel counts, stacked as (K, ...)
tensors.  A pixel is numbered ``(panel * spixels + slow) * fpixels + fast``: the image is
(panel, slow, fast) in memory, and rows of all panels follow one another (the row blocks
of the reference's OpenMP schedule run over them).  The nanoBragg command line describes one
panel (placed by :mod:`nbsim.model.geometry`, with all its conventions and pivots); a configuration
may instead list panels (:class:`nbsim.model.config.PanelConfig`), for instance
:func:`split_detector`'s tiles of the command line's panel.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import Tensor

from nbsim.model.config import PanelConfig, RunConfig
from nbsim.model.geometry import DetectorGeometry, placed_detector
from nbsim.physics.vectors import rotate_xyz


@attrs.frozen(eq=False)
class Panels:
    """K panels as tensors: vectors (K, 3) in metres, the rest (K,)."""

    origin: Tensor  # sample -> outer corner of pixel (0, 0) of each panel
    fast: Tensor
    slow: Tensor
    normal: Tensor
    pixel_size: Tensor
    close_distance: Tensor  # origin · normal: the panel plane's distance from the sample
    thickness: Tensor
    thickstep: Tensor  # thickness of one sensor layer
    mu: Tensor  # attenuation coefficient, 1/m
    fpixels: int
    spixels: int

    @property
    def count(self) -> int:
        return int(self.origin.shape[0])

    @property
    def rows(self) -> int:
        """Pixel rows of all panels together."""
        return self.count * self.spixels

    @property
    def pixels(self) -> int:
        return self.count * self.spixels * self.fpixels

    def locate(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(panel, slow, fast) of flat pixel indices ``idx``."""
        row = idx // self.fpixels
        fast = idx - row * self.fpixels
        if self.count == 1:  # the common case, without two more integer divisions per pixel
            return torch.zeros_like(row), row, fast
        panel = row // self.spixels
        return panel, row - panel * self.spixels, fast


def from_geometry(g: DetectorGeometry, *, pixel_size: Tensor, fpixels: int, spixels: int, thickness: Tensor,
                  thickstep: Tensor, mu: Tensor) -> Panels:
    """The one panel of a placed command-line detector (differentiable in every input)."""

    def one(x: Tensor) -> Tensor:
        return x[None]

    return Panels(origin=one(g.pix0), fast=one(g.fdet), slow=one(g.sdet), normal=one(g.odet),
                  pixel_size=one(pixel_size), close_distance=one(g.close_distance), thickness=one(thickness),
                  thickstep=one(thickstep), mu=one(mu), fpixels=fpixels, spixels=spixels)


def from_config(panels: tuple[PanelConfig, ...], *, thicksteps: int, device=None,
                dtype: torch.dtype = torch.float64) -> Panels:
    """Panels listed in a configuration, each sensor in ``thicksteps`` layers."""

    def t(values) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    origin = t([p.origin for p in panels])
    normal = t([p.normal for p in panels])
    thickness = t([p.thickness for p in panels])
    thickstep = t([p.thickness / thicksteps if p.thickstep is None else p.thickstep for p in panels])
    return Panels(origin=origin, fast=t([p.fast for p in panels]), slow=t([p.slow for p in panels]),
                  normal=normal, pixel_size=t([p.pixel_size for p in panels]),
                  close_distance=(origin * normal).sum(-1), thickness=thickness, thickstep=thickstep,
                  mu=t([p.mu for p in panels]), fpixels=panels[0].fpixels, spixels=panels[0].spixels)


def moved(panels: Panels, shift: Tensor, rotation: Tensor) -> Panels:
    """``panels`` each turned about its centre by ``rotation`` (K, 3) (radians about lab x,
    then y, then z, as a misset) and moved by ``shift`` (K, 3) metres (differentiable)."""
    half = panels.pixel_size[:, None] / 2
    centre = panels.origin + half * (panels.fpixels * panels.fast + panels.spixels * panels.slow)
    rx, ry, rz = rotation.unbind(-1)
    fast, slow, normal, arm = (rotate_xyz(v, rx, ry, rz) for v in
                               (panels.fast, panels.slow, panels.normal, panels.origin - centre))
    origin = centre + shift + arm
    return attrs.evolve(panels, origin=origin, fast=fast, slow=slow, normal=normal,
                        close_distance=(origin * normal).sum(-1))


def split_detector(config: RunConfig, fast_tiles: int, slow_tiles: int) -> RunConfig:
    """``config`` with its command-line panel cut into fast_tiles x slow_tiles panels of equal
    size, the same pixels in the same places: panel ``s * fast_tiles + f`` holds tile (f, s).

    The ROI and mask become a (panels, slow, fast) mask of the same pixels.  (A thin sensor's
    attenuation, which the command line leaves at -1 and nothing uses, becomes 0.)
    """
    d = config.detector
    if d.panels is not None:
        raise ValueError("split_detector: the detector is already a list of panels")
    if d.curved:
        raise ValueError("split_detector: a curved detector cannot be cut into flat panels")
    if d.fpixels % fast_tiles or d.spixels % slow_tiles:
        raise ValueError(f"split_detector: {d.fpixels}x{d.spixels} pixels do not divide into "
                         f"{fast_tiles}x{slow_tiles} tiles")
    g = placed_detector(d, config.beam.direction)
    nf, ns = d.fpixels // fast_tiles, d.spixels // slow_tiles
    pix0, fdet, sdet = (v.numpy() for v in (g.pix0, g.fdet, g.sdet))
    keep = kept_pixels(config)[0]
    panels, masks = [], []
    for s in range(slow_tiles):
        for f in range(fast_tiles):
            origin = pix0 + (f * nf * d.pixel_size) * fdet + (s * ns * d.pixel_size) * sdet
            panels.append(PanelConfig(name=f"tile {f},{s}", origin=origin, fast=fdet, slow=sdet,
                                      normal=g.odet.numpy(), pixel_size=d.pixel_size, fpixels=nf, spixels=ns,
                                      thickness=d.thickness, mu=d.mu if d.thickness > 0 else 0.0,
                                      thickstep=d.thickstep))
            masks.append(keep[s * ns:(s + 1) * ns, f * nf:(f + 1) * nf])
    detector = attrs.evolve(d, fpixels=nf, spixels=ns, panels=tuple(panels), mask=np.stack(masks),
                            roi=(0, nf - 1, 0, ns - 1), mask_file=None)
    return attrs.evolve(config, detector=detector)


def kept_pixels(config: RunConfig) -> np.ndarray:
    """(panels, spixels, fpixels) bool: the pixels inside the ROI (of every panel) and not masked."""
    d = config.detector
    keep = np.zeros((d.n_panels, d.spixels, d.fpixels), dtype=bool)
    xmin, xmax, ymin, ymax = d.roi
    keep[:, max(ymin, 0): ymax + 1, max(xmin, 0): xmax + 1] = True
    if d.mask is not None:
        if d.mask.shape not in ((d.spixels, d.fpixels), keep.shape):
            raise ValueError(f"mask has shape {d.mask.shape}, the detector {keep.shape}")
        keep &= d.mask.astype(bool)
    return keep


def rendered_pixels(config: RunConfig, device=None) -> Tensor:
    """Flat indices (module docstring) of the pixels inside the ROI and not masked, in order."""
    return torch.from_numpy(np.flatnonzero(kept_pixels(config))).to(device=device)
