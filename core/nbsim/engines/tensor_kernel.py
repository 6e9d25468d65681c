"""Per-chunk physics: the intensity of a set of pixels (``specs/physics.md``).

For a chunk of P pixels the kernel evaluates, without Python loops over pixels, sub-pixels,
layers, sources, phi steps or domains:

* per pass (pixel x layer x sub-pixel x source, N = P*Q of them): the sub-pixel position,
  the diffracted direction, the solid angle, the sensor capture fraction, the scattering
  vector, the ``-dmin`` cut and the polarization factor;
* per sub-evaluation (pass x phi step x mosaic domain): the fractional Miller indices, the
  lattice factor and the structure factor, summed as F_cell^2 F_latt^2.

The reference program caches the solid angle, capture fraction and polarization of a pixel
(the first non-zero value it computes is kept, unless an ``-oversample_*`` flag asks for
recomputation) and, with those flags, multiplies the *running sum* by the factor after each
term; both are reproduced exactly, the running product as a closed form (suffix products).
Orientations are split into sub-chunks so that memory stays within the budget whatever the
number of phi steps and domains.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from nbsim.engines.interpolation import InterpolationSwitch, out_of_range, tricubic
from nbsim.model.build import R_E_SQR, Model
from nbsim.physics import pass_quantities as pq
from nbsim.physics.vectors import apply_matrix, components, stacked
from nbsim.plugins.selection import Physics
from nbsim.protocols import LatticeFactor, Passes, PolarizationModel, offers

#: bytes of working memory the kernel needs per sub-evaluation (measured with
#: ``tests/live_memory.py``; either precision, as Miller indices and lattice factors are double):
#: the common case, running products (every term kept with its bookkeeping) and tricubic
#: interpolation (64 neighbours a term)
BYTES_PER_TERM = 160
BYTES_PER_TERM_RUNNING = 260
BYTES_PER_TERM_INTERPOLATED = 2400
#: with gradients, a chunk is recomputed in the backward pass and holds its graph there
#: (measured: 1.05x the forward's bytes, 1.1x with running products, 1.6x with interpolation)
GRADIENT_FACTOR = 1.7
#: bytes of working memory per pass
BYTES_PER_PASS = 600
#: more bytes per sub-evaluation where every pass has lattices of its own (a phi policy that
#: has no ``shared_tables``): the gathered and the rotated lattice vectors, 72 each, and
#: the products between them; and per pass and phi step, the policy's own table
BYTES_PER_PASS_LATTICE = 216
BYTES_PER_PASS_TABLE = 72
#: sub-evaluations per sub-chunk: small enough for the caches, large enough for the vector units
TARGET_TERMS = 1 << 17
#: passes per chunk worth the Python overhead of a chunk
MIN_PASSES = 2048
#: (phi step, domain) orientations summed together; fixed, so that chunking never changes a sum
ORIENTATION_BLOCK = 64


@attrs.frozen
class PassOrder:
    """Row blocks of the reference program's OpenMP schedule and their first executed pass."""

    block_of_row: Tensor  # (rows,) int64, the rows of every panel (nbsim.model.panels)
    block_first: Tensor  # (B,) int64, -1 where a block executes nothing


def first_nonzero(x: Tensor, initial: float | Tensor) -> Tensor:
    """Value of the first non-zero element along the last dimension, else ``initial``."""
    nz = x != 0
    first = nz.to(torch.int8).argmax(dim=-1, keepdim=True)
    value = x.gather(-1, first).squeeze(-1)
    initial = torch.as_tensor(initial, dtype=x.dtype, device=x.device)
    return torch.where(nz.any(dim=-1), value, initial)


def pass_geometry(m: Model, idx: Tensor, polarization: PolarizationModel) -> dict[str, Tensor]:
    """Pass-level quantities of the pixels ``idx`` (flat raster indices).

    Shapes: P pixels, T layers, n sub-pixels per side, S sources; ``Q = T*n*n*S``.
    """
    cfg = m.config
    dt, dev = m.dtype, m.device
    n, T = m.oversample, m.thicksteps
    panel, sp, fp = m.panels.locate(idx)

    def of_pixel(x: Tensor, *dims: int) -> Tensor:  # the pixels' panels' values, (P | 1, 1.., [3])
        x = x[panel] if m.panels.count > 1 else x  # one panel: broadcast, no gather (small renders feel it)
        return x.reshape(x.shape[0], *dims, *x.shape[1:])

    origin, fdet, sdet, odet = (components(of_pixel(v, 1, 1, 1)) for v in
                                (m.panels.origin, m.panels.fast, m.panels.slow, m.panels.normal))
    pixel_size = of_pixel(m.panels.pixel_size)
    subpixel_size = pixel_size[:, None] / n
    thickstep = of_pixel(m.panels.thickstep, 1)
    sub = torch.arange(n, device=dev)
    Fdet = pq.subpixel_coordinate((fp[:, None] * n + sub).to(dt), subpixel_size)  # (P, n) fast
    Sdet = pq.subpixel_coordinate((sp[:, None] * n + sub).to(dt), subpixel_size)  # (P, n) slow
    Odet = torch.arange(T, device=dev).to(dt) * thickstep  # (P, T)
    point = pq.point_on_panel(Fdet[:, None, None, :], Sdet[:, None, :, None], Odet[:, :, None, None],
                              fdet, sdet, odet, origin)  # components (P, T, n_slow, n_fast)
    if cfg.detector.curved:  # the command line's panel only (a list of panels is flat)
        g = m.geometry
        point = pq.curved_point(point, g.distance, components(g.beam), components(g.fdet), components(g.sdet))
    direction, airpath = pq.diffracted_direction(point)
    side = pixel_size[:, None, None, None]
    close = of_pixel(m.panels.close_distance, 1, 1, 1)
    omega = pq.solid_angle(airpath, side, close, cfg.detector.point_pixel)
    capture = None  # only a thick sensor or -oversample_thick uses the capture fraction
    if cfg.detector.thick or cfg.sampling.oversample_thick:
        layer = torch.arange(T, device=dev).to(dt)[None, :, None, None]
        capture = pq.capture_fraction(layer, thickstep[:, :, None, None], of_pixel(m.panels.mu, 1, 1, 1),
                                      pq.parallax(direction, odet))

    incident = -m.sources.directions  # (S, 3)
    lam = m.sources.wavelengths  # (S,)
    scattering = stacked(pq.scattering_vector(tuple(x[..., None] for x in direction), components(incident), lam))
    dmin = cfg.sampling.dmin  # scattering (P, T, n, n, S, 3)
    if dmin > 0:
        survive = ~pq.beyond_dmin(components(scattering), dmin)
    else:
        survive = torch.ones(scattering.shape[:-1], dtype=torch.bool, device=dev)
    pos, diffracted = stacked(point), stacked(direction)
    polar = polarization.factor(incident, diffracted[..., None, :], m.polar_vector, m.kahn)
    polar = polar.expand(survive.shape)
    return {
        "panel": panel, "fast": fp, "slow": sp, "position": pos, "diffracted": diffracted, "airpath": airpath,
        "omega": omega, "capture": capture, "scattering": scattering, "survive": survive,
        "polar": polar, "incident": incident,
    }


def chunk_passes(m: Model, idx: Tensor, survive: Tensor, order: PassOrder) -> Passes:
    """The :class:`Passes` of a chunk: ``survive`` is (P, Q) in loop order."""
    Q = survive.shape[1]
    ordinal = idx[:, None] * Q + torch.arange(Q, device=idx.device)
    block = order.block_of_row[idx // m.config.detector.fpixels][:, None].expand(-1, Q)
    return Passes(ordinal=ordinal.reshape(-1), block=block.reshape(-1), executed=survive.reshape(-1),
                  block_first=order.block_first)


def variant_tables(m: Model, physics: Physics) -> Tensor:
    """Phi-step lattices (V, F, 3, 3) of a policy with ``shared_tables`` (nbsim.protocols):
    row 0 for a block's later passes, row 1 (V == 2) for its first pass."""
    return physics.policy.shared_tables(m.base_vectors, m.phi, m.spindle)


@attrs.frozen
class PassOrientations:
    """The phi-step lattices of a chunk's passes, for one image or a batch of images that
    differ only in orientation (:mod:`nbsim.engines.batch`).

    ``tables`` (V, B*F, 3, 3), image b's F phi steps at b*F ..; ``row`` (N,) the table of
    each pass, or None where V == 1 (every pass shares it) or V == N (one per pass, in order).
    A policy with ``shared_tables`` needs at most two tables, which keeps every pass on a shared
    matrix product and no (pass, orientation) lattice in memory.  ``mosaic`` (B*M, 3, 3): each
    image's domain rotations, or None without mosaic spread.
    """

    tables: Tensor
    row: Tensor | None
    mosaic: Tensor | None
    domains: int  # mosaic domains of an image (M)
    per_image: int  # orientations of an image: phi steps x domains

    @staticmethod
    def shared(physics: Physics) -> bool:
        """Whether the policy offers ``shared_tables``: its passes share (at most two) tables."""
        return offers(physics.policy, "shared_tables", "orientations")

    @classmethod
    def of(cls, m: Model, physics: Physics, passes: Passes, batch: tuple[Model, ...] = ()) -> PassOrientations:
        """``batch``: the models of a batch (``m`` first), which share ``m``'s passes."""
        mosaic = m.mosaic if m.mosaic is None or not batch else torch.cat([b.mosaic for b in batch])
        sizes = dict(domains=m.domains, per_image=m.phisteps * m.domains)
        if cls.shared(physics):
            tables = variant_tables(m, physics) if not batch else _joined([variant_tables(b, physics) for b in batch])
            first = passes.first_in_block & passes.executed
            return cls(tables, None if tables.shape[0] == 1 else first.to(torch.int64), mosaic, **sizes)
        if batch:
            raise ValueError("images are rendered together only under a phi policy with shared_tables")
        return cls(physics.policy.orientations(m.base_vectors, m.phi, m.spindle, passes), None, mosaic, **sizes)

    @classmethod
    def single(cls, m: Model, tables: Tensor) -> PassOrientations:
        """The orientations of ``m`` from its phi-step ``tables`` (V, F, 3, 3), every pass alike."""
        return cls(tables, None, m.mosaic, m.domains, m.phisteps * m.domains)

    def block(self, start: int, stop: int) -> Tensor:
        """Lattice vectors (V, stop - start, 3, 3) of orientations start..stop - 1 (rows a, b, c);
        orientations are numbered image major, then phi step, then mosaic domain."""
        if self.mosaic is None:
            return self.tables[:, start:stop]
        M = self.domains
        r = torch.arange(start, min(stop, self.tables.shape[1] * M), device=self.tables.device)
        # domain rotation applied after the spindle rotation, in the lab frame; image r // per_image's domains
        return apply_matrix(self.mosaic[(r // self.per_image) * M + r % M][None, :, None], self.tables[:, r // M])

    def per_pass(self, lattice: Tensor) -> Tensor:
        """A block's lattices (V, R, 3, 3) as (N or 1, R, 3, 3), one per pass where they differ."""
        return lattice if self.row is None else lattice[self.row]


def _joined(tables: list[Tensor]) -> Tensor:
    """Images' phi-step tables (V_b, F, 3, 3) side by side, (V, B*F, 3, 3): an image with one
    table (every pass alike) repeats it where another has a second (c-parity's phi = 0)."""
    V = max(t.shape[0] for t in tables)
    return torch.cat([t.expand(V, *t.shape[1:]) for t in tables], 1)


def structure_factor(m: Model, hkl0: Tensor) -> Tensor:
    """Nearest-neighbour F_cell at integer indices ``hkl0`` (default_F outside the grid)."""
    if m.F_grid is None or m.config.crystal.hkls == 0:
        return m.default_F.expand(hkl0.shape[:-1])
    return nearest_F(F_table(m), hkl0)


def miller_indices(scattering: Tensor, lattice: Tensor, row: Tensor | None = None) -> Tensor:
    """(N, R, 3) h, k, l = a·S, b·S, c·S for scattering (N, 3) and lattice (V, R, 3, 3):
    V == 1 shared, else the table ``row`` (N,) of each pass (None: V == N, one per pass).

    A matrix product in eager mode (one per table); explicit multiply-adds when compiling, so
    that they fuse with what follows instead of going through memory.  Tables are selected,
    not gathered: an indexed lattice inside a fused kernel makes inductor's code generation
    take minutes.
    """
    if row is not None:
        hkl = miller_indices(scattering, lattice[:1])
        for v in range(1, lattice.shape[0]):
            hkl = torch.where((row == v)[:, None, None], miller_indices(scattering, lattice[v:v + 1]), hkl)
        return hkl
    if torch.compiler.is_compiling():
        # computed as (3, R, N) and viewed as (N, R, 3): N innermost in memory, so that the
        # compiled loops vectorize over pixels rather than over the three indices
        lat = lattice.permute(3, 2, 1, 0)  # (xyz, abc, R, N|1)
        s = scattering.T  # (xyz, N)
        hkl = lat[0] * s[0, None, None, :] + lat[1] * s[1, None, None, :] + lat[2] * s[2, None, None, :]
        return hkl.permute(2, 1, 0)
    R = lattice.shape[1]
    if lattice.shape[0] == 1:
        return (scattering @ lattice[0].reshape(R * 3, 3).T).reshape(-1, R, 3)
    return torch.bmm(lattice.reshape(-1, R * 3, 3), scattering[:, :, None]).reshape(-1, R, 3)


def F_table(m: Model) -> tuple:
    """The structure-factor grid as (flat grid, lower bounds, upper bounds, shape, default_F)."""
    sf = m.config.crystal.structure_factors
    lo = torch.tensor([sf.h_min, sf.k_min, sf.l_min], device=m.device)
    hi = torch.tensor([sf.h_max, sf.k_max, sf.l_max], device=m.device)
    return (m.F_grid, lo, hi, m.F_shape, m.default_F)


def nearest_F(table: tuple, hkl0: Tensor) -> Tensor:
    grid, lo, hi, shape, default_F = table
    h = hkl0.to(torch.int64)
    inside = ((h >= lo) & (h <= hi)).all(dim=-1)
    rel = torch.minimum(torch.maximum(h - lo, torch.zeros_like(h)), hi - lo)
    flat = (rel[..., 0] * shape[1] + rel[..., 1]) * shape[2] + rel[..., 2]
    return torch.where(inside, grid[flat], default_F)


def lattice_sums(scattering: Tensor, lattice: Tensor, row: Tensor | None, mask: Tensor | None,
                 factor: LatticeFactor, n_cells: Tensor, fudge: Tensor, reciprocal: Tensor, table: tuple | None,
                 nearest: bool, images: int = 1) -> Tensor:
    """Σ over an orientation block of F_latt² (times F_cell² with a structure-factor ``table``).

    :param scattering: (N, 3) scattering vectors; :param lattice: (V, R, 3, 3) lattice vectors
    and :param row: each pass's table (:func:`miller_indices`); :param mask: (R,) weights (0
    for padding) or None; :param images: the block holds that many images' orientations, one
    after another, summed apart.  Returns (N,) in n_cells' dtype, or (N, images).
    """
    if images > 1:  # each image's indices by the product its own render makes (same shapes, same roundings)
        R = lattice.shape[1] // images
        hkl = torch.cat([miller_indices(scattering, lattice[:, i * R:(i + 1) * R], row) for i in range(images)], 1)
    else:
        hkl = miller_indices(scattering, lattice, row)
    hkl0 = torch.ceil(hkl - 0.5) if nearest else None
    F_latt = factor.evaluate(hkl, hkl0, n_cells, fudge, reciprocal)
    term = torch.square(F_latt) if table is None else torch.square(nearest_F(table, hkl0).to(F_latt.dtype) * F_latt)
    if mask is not None:
        term = term * mask
    if images > 1:
        return term.reshape(*term.shape[:-1], images, -1).sum(-1)
    return term.sum(-1)


def records_gradients(m: Model) -> bool:
    """Whether a render of ``m`` now records gradients (every parameter reaches the anchor)."""
    return torch.is_grad_enabled() and m.anchor.requires_grad


def _scaled(x: Tensor, factor: Tensor) -> Tensor:
    """x * factor, except that 0 stays 0 when the factor has overflowed: the reference multiplies
    its running sum term by term, and a zero sum stays zero however large the factors."""
    return torch.where(x == 0, torch.zeros_like(x), x * factor)


def running_products(m: Model) -> bool:
    """Whether a ``-oversample_thick/_polar/_omega`` flag makes the sums running products."""
    s = m.config.sampling
    return s.oversample_thick or s.oversample_polar or s.oversample_omega


def render_pixels(
    m: Model,
    idx: Tensor,
    physics: Physics,
    order: PassOrder,
    *,
    orientation_chunk: int,
    interpolating: bool = False,
    collect: Callable[[str, dict], None] | None = None,
    sums: Callable[..., Tensor] | None = None,
    batch: tuple[Model, ...] = (),
    images_per_block: int = 1,
) -> tuple[Tensor, Tensor, InterpolationSwitch | None]:
    """Pixel values (P,), their summed solid angles (P,) and where interpolation ended, if it did.

    ``idx`` are flat raster indices in increasing order.  The function has no side effects,
    so that a chunk can be recomputed (gradient checkpointing).  Its steps: the pass
    quantities (:func:`pass_geometry`), the interpolation switch, the orientation sums, the
    pixel's intensity (:class:`ChunkSums`) and its final factors (:func:`pixel_values`).

    :param orientation_chunk: how many (phi step, domain) orientations to evaluate at once.
    :param interpolating: whether tricubic interpolation is still on when the chunk starts
        (chunks come in raster order; the returned switch, if any, turns it off for the next).
    :param sums: the function summing F_latt^2 (F_cell^2) over an orientation block in the common
        case: :func:`lattice_sums` or a compiled version of it (``nbsim.engines.compiled``).
    :param collect: when given, called with ("geometry" | "scattering" | "pixel", tensors)
        for these pixels (used for tracing; the pixels should be few).
    :param batch: B models (``m`` first) that differ from ``m`` in orientation only
        (:mod:`nbsim.engines.batch`): the values are then (B, P), one row per image, each the
        value its own render gives; ``images_per_block`` of them share an orientation block
        when an image's orientations fit in one.
    """
    geo = pass_geometry(m, idx, physics.polarization)
    if collect is not None:
        collect("geometry", geo)
    chunk = ChunkSums.of(m, idx, physics, order, geo, orientation_chunk=orientation_chunk,
                         interpolating=interpolating, traced=collect is not None, batch=batch,
                         images_per_block=images_per_block)
    switch_key, switch, first_block = chunk.interpolation_switch(idx) if chunk.interpolating else (None, None, None)
    acc, count = chunk.orientation_sums(sums or lattice_sums, switch_key, first_block, collect)
    return (*pixel_values(m, geo, chunk.survive, chunk.polar, chunk.intensity(acc, count), collect), switch)


@attrs.frozen(eq=False)
class ChunkSums:
    """The orientation sums of a chunk of P pixels, Q passes each, R orientations a pass."""

    m: Model
    physics: Physics
    survive: Tensor  # (P, Q) the passes that run their orientation loop
    polar: Tensor  # (P, Q) polarization factor of each pass
    scattering: Tensor  # (P * Q, 3)
    oriented: PassOrientations
    orientation_chunk: int
    #: the running factor of each pass (-oversample_thick/_polar/_omega), or None
    running: Tensor | None
    interpolating: bool
    #: whether every term is kept with its bookkeeping (running products, interpolation, tracing)
    detailed: bool
    #: whether the lattice factor gets the nearest integer indices
    nearest: bool
    cd: torch.dtype  # precision of the lattice and structure factors
    n_cells: Tensor
    fudge: Tensor
    reciprocal: Tensor
    images: int = 1  # images of a batch (their sums kept apart)
    images_per_block: int = 1  # of them in one orientation block

    @classmethod
    def of(cls, m: Model, idx: Tensor, physics: Physics, order: PassOrder, geo: dict[str, Tensor], *,
           orientation_chunk: int, interpolating: bool, traced: bool, batch: tuple[Model, ...] = (),
           images_per_block: int = 1) -> ChunkSums:
        P = idx.shape[0]
        survive = geo["survive"].reshape(P, -1)
        Q = survive.shape[1]
        polar = geo["polar"].reshape(P, Q)
        s = m.config.sampling

        def per_pass(x: Tensor) -> Tensor:  # (P, T, n, n) -> (P, Q), repeated over sources
            return x[..., None].expand(*x.shape, m.n_sources).reshape(P, Q)

        running = None
        if running_products(m):
            running = torch.ones_like(polar)
            if s.oversample_thick:
                running = running * per_pass(geo["capture"])
            if s.oversample_polar:
                running = running * polar
            if s.oversample_omega:
                running = running * per_pass(geo["omega"])
        interpolating = m.config.crystal.interpolate and interpolating
        # Running products and the interpolation switch hinge on which F_latt are exactly 0: in
        # single precision a factor such as the Gaussian's underflows to 0 where the reference's
        # double does not, so these are evaluated in double precision whatever the render's dtype.
        cd = torch.float64 if running is not None or interpolating else m.compute_dtype
        detailed = running is not None or interpolating or traced
        if batch and detailed:
            raise ValueError("images are rendered together only without running products, interpolation or tracing")
        nearest = detailed or not constant_F(m) or physics.lattice.needs_nearest
        return cls(m=m, physics=physics, survive=survive, polar=polar, scattering=geo["scattering"].reshape(P * Q, 3),
                   oriented=PassOrientations.of(m, physics, chunk_passes(m, idx, survive, order), batch),
                   orientation_chunk=orientation_chunk, running=running, interpolating=interpolating,
                   detailed=detailed, nearest=nearest, cd=cd,
                   n_cells=m.n_cells.to(cd), fudge=m.fudge.to(cd), reciprocal=m.lattice.reciprocal.to(cd),
                   images=max(1, len(batch)), images_per_block=images_per_block)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(P, Q, R)"""
        P, Q = self.survive.shape
        return P, Q, self.m.phisteps * self.m.domains

    def evaluate(self, r0: int):
        """Lattice, Miller indices, nearest indices, F_latt and (detailed) which evaluations
        reach the structure factor, for orientations r0 .. r0 + orientation_chunk - 1."""
        P, Q, _ = self.shape
        lat = self.oriented.block(r0, r0 + self.orientation_chunk)
        hkl = miller_indices(self.scattering, lat, self.oriented.row).reshape(P, Q, lat.shape[1], 3)
        hkl0 = torch.ceil(hkl - 0.5) if self.nearest else None
        F_latt = self.physics.lattice.evaluate(hkl, hkl0, self.n_cells, self.fudge, self.reciprocal)
        reached = None
        if self.detailed:
            # an evaluation reaches the structure factor unless F_latt is exactly 0 (and no water)
            water = self.m.config.beam.water_size != 0.0
            reached = self.survive[..., None] & ((F_latt != 0) if not water else torch.ones_like(F_latt, dtype=torch.bool))
        return lat, hkl, hkl0, F_latt, reached

    def keys(self, r0: int, rc: int) -> Tensor:
        """Position of each evaluation (P, Q, rc) in the loop order."""
        P, Q, R = self.shape
        pq_ = torch.arange(P * Q, device=self.m.device).reshape(P, Q, 1)
        return pq_ * R + torch.arange(r0, r0 + rc, device=self.m.device)

    def interpolation_switch(self, idx: Tensor):
        """Where the first out-of-range evaluation in loop order ends interpolation, for good:
        (its key or None, the switch or None, the first block's evaluation when it is the only one)."""
        _, Q, R = self.shape
        best = evaluated = None
        for r0 in range(0, R, self.orientation_chunk):
            evaluated = self.evaluate(r0)
            _, hkl, hkl0, _, reached = evaluated
            flagged = reached & out_of_range(self.m, hkl)
            if flagged.any():
                k = torch.where(flagged, self.keys(r0, hkl.shape[2]), torch.iinfo(torch.int64).max)
                pos = int(k.argmin())
                if best is None or int(k.reshape(-1)[pos]) < best[0]:
                    best = (int(k.reshape(-1)[pos]), hkl.reshape(-1, 3)[pos], hkl0.reshape(-1, 3)[pos])
        first_block = evaluated if R <= self.orientation_chunk else None
        if best is None:
            return None, None, first_block
        h, h0 = best[1].tolist(), [int(x) for x in best[2].tolist()]
        return best[0], InterpolationSwitch(hkl=(*h, *h0), pixel=int(idx[best[0] // (Q * R)])), first_block

    def orientation_sums(self, sums: Callable[..., Tensor], switch_key: int | None, first_block,
                         collect: Callable[[str, dict], None] | None) -> tuple[Tensor, Tensor | None]:
        """(P, Q) sums over every orientation, and with running products how many terms each
        pass multiplied its running sum by."""
        m = self.m
        P, Q, R = self.shape
        table = None if constant_F(m) else F_table(m)
        if self.images > 1:
            return self.batch_sums(sums, table), None
        acc = torch.zeros((P, Q), dtype=m.dtype, device=m.device)
        count = torch.zeros((P, Q), dtype=torch.int64, device=m.device) if self.running is not None else None
        for r0 in range(0, R, self.orientation_chunk):
            if not self.detailed:
                acc = acc + self.block_sum(sums, r0, table).reshape(P, Q).to(acc.dtype)
                continue
            lat, hkl, hkl0, F_latt, reached = first_block if first_block is not None else self.evaluate(r0)
            F_cell = structure_factor(m, hkl0).to(self.cd)
            if self.interpolating:
                smooth = tricubic(m, hkl).to(self.cd)
                if switch_key is not None:
                    smooth = torch.where(self.keys(r0, hkl.shape[2]) < switch_key, smooth, F_cell)
                F_cell = smooth
            term = F_cell * F_cell * F_latt * F_latt
            if collect is not None:
                collect("scattering", {"hkl": hkl, "hkl0": hkl0, "F_latt": F_latt, "F_cell": F_cell,
                                       "term": term, "lattice": self.oriented.per_pass(lat), "r0": r0})
            if self.running is None:
                acc = acc + term.sum(-1).to(acc.dtype)
                continue
            # each reached term is multiplied by the running factor once for every later term of the block
            rank = torch.cumsum(reached.to(torch.int64), dim=-1)
            n_chunk = rank[..., -1]
            power = (n_chunk[..., None] - rank + 1).to(m.dtype)
            term = term.to(acc.dtype)
            g = self.running
            contrib = torch.where(reached, _scaled(term, torch.pow(g[..., None], power)), torch.zeros_like(term)).sum(-1)
            acc = _scaled(acc, torch.pow(g, n_chunk.to(m.dtype))) + contrib
            count = count + n_chunk
        return acc, count

    def batch_sums(self, sums: Callable[..., Tensor], table: tuple | None) -> Tensor:
        """(B, P, Q) each image's sums over its orientations, block by block as its own render
        sums them (so that every image gets its own render's values); images whose
        orientations fit in one block share an evaluation, ``images_per_block`` at a time."""
        m = self.m
        P, Q, R = self.shape
        B, per = self.images, self.images_per_block if R <= self.orientation_chunk else 1
        acc = torch.zeros((B, P * Q), dtype=m.dtype, device=m.device)
        for b0 in range(0, B, per):
            b1 = min(B, b0 + per)
            for r0 in range(0, R, self.orientation_chunk):
                r1 = min(R, r0 + self.orientation_chunk)
                if b1 - b0 > 1:  # whole images, one after another
                    lat = self.oriented.block(b0 * R, b1 * R)
                else:
                    lat = self.oriented.block(b0 * R + r0, b0 * R + r1)
                block = sums(self.scattering, lat, self.oriented.row, None, self.physics.lattice, self.n_cells,
                             self.fudge, self.reciprocal, table, self.nearest, b1 - b0)
                acc[b0:b1] = acc[b0:b1] + block.reshape(P * Q, b1 - b0).T.to(acc.dtype)
        return acc.reshape(B, P, Q)

    def block_sum(self, sums: Callable[..., Tensor], r0: int, table: tuple | None) -> Tensor:
        """The common case's sum over one orientation block, (P * Q,)."""
        m = self.m
        lat = self.oriented.block(r0, r0 + self.orientation_chunk)
        mask = None
        if sums is not lattice_sums:
            # compiled for one block size and signature (a mask on every block, so that a last,
            # partial block costs no second compilation): padded with zero lattices it removes
            pad = self.orientation_chunk - lat.shape[1]
            mask = (torch.arange(self.orientation_chunk, device=m.device) < lat.shape[1]).to(self.cd)
            lat = torch.cat((lat, torch.zeros((lat.shape[0], pad, 3, 3), dtype=lat.dtype, device=m.device)), 1)
        return sums(self.scattering, lat, self.oriented.row, mask, self.physics.lattice, self.n_cells, self.fudge,
                    self.reciprocal, table, self.nearest)

    def intensity(self, acc: Tensor, count: Tensor | None) -> Tensor:
        """(P,) the pixel's summed intensity, water background included."""
        m = self.m
        acc = self.source_weighted(acc)
        if self.running is not None:
            G = torch.pow(self.running, count.to(m.dtype))  # (P, Q) what each pass multiplies the running sum by
            suffix = torch.flip(torch.cumprod(torch.flip(G, (-1,)), dim=-1), (-1,))  # prod_{q' >= q}
            after = torch.cat((suffix[:, 1:], torch.ones_like(suffix[:, :1])), dim=-1)  # prod_{q' > q}
            return _scaled(m.I_bg.expand_as(suffix[:, 0]), suffix[:, 0]) + _scaled(acc, after).sum(-1)
        if constant_F(m) and not self.detailed:
            acc = acc * (m.default_F * m.default_F)
        return m.I_bg + torch.where(self.survive, acc, torch.zeros_like(acc)).sum(-1)

    def source_weighted(self, acc: Tensor) -> Tensor:
        """(P, Q) pass sums times their source's intensity weight (a spectrum's, nbsim.model.sources):
        every term of the pass counts w_s times, its running product's terms included
        (I <- (I + w_s term) g).  Without weights the sums are returned untouched."""
        weights = self.m.sources.intensity_weights
        if weights is None:
            return acc
        return acc * weights.to(acc.dtype).repeat(self.shape[1] // weights.shape[0])  # sources innermost in Q


def constant_F(m: Model) -> bool:
    """Whether every structure factor is default_F (no grid, or an empty one)."""
    return m.F_grid is None or m.config.crystal.hkls == 0


def pixel_values(m: Model, geo: dict[str, Tensor], survive: Tensor, polar: Tensor, I: Tensor,
                 collect: Callable[[str, dict], None] | None) -> tuple[Tensor, Tensor]:
    """(P,) pixel values from their intensities ``I`` (a batch's (images, P) give (images, P)),
    and their summed solid angles (P,): the factors a pixel keeps (its first non-zero solid
    angle, capture fraction and polarization, unless an ``-oversample_*`` flag made them
    running factors)."""
    cfg, s = m.config, m.config.sampling
    P = I.shape[-1]  # (P,) or (images, P)
    omega, capture = geo["omega"], geo["capture"]
    value = R_E_SQR * m.fluence * I / m.steps
    omega_final = first_nonzero(omega.reshape(P, -1), 0.0)
    if not cfg.detector.thick:
        capture_final = torch.ones_like(omega_final)
    else:  # a panel without thickness (beside thick ones) captures everything, as when all are thin
        capture_final = first_nonzero(capture[:, -1].reshape(P, -1), 0.0)
        if cfg.detector.panels is not None and not all(p.thickness > 0 for p in cfg.detector.panels):
            capture_final = torch.where(m.panels.thickness[geo["panel"]] == 0, 1.0, capture_final)
    polar_final = first_nonzero(torch.where(survive, polar, torch.zeros_like(polar)),
                                1.0 if cfg.beam.nopolar else 0.0)
    if not s.oversample_thick:
        value = value * capture_final
    if not s.oversample_polar:
        value = value * polar_final
    if not s.oversample_omega:
        value = value * omega_final
    with torch.no_grad():
        if s.oversample_omega:
            omega_sum = omega.reshape(P, -1).sum(-1)
        else:
            omega_sum = omega_final * (m.thicksteps * m.oversample * m.oversample)
    if collect is not None:
        collect("pixel", {"I": I, "value": value, "omega": omega_final, "capture": capture_final,
                          "polar": polar_final, "steps": m.steps})
    return value, omega_sum


def memory_plan(m: Model, budget_bytes: int, fused: bool = False,
                per_pass_lattices: bool = False) -> tuple[int, int]:
    """(pixels per chunk, orientations per sub-chunk).

    Orientations are summed in fixed blocks of ``ORIENTATION_BLOCK`` (fewer only when the
    budget cannot hold one pixel's block), so that a pixel's value does not depend on the
    chunking.  On a CPU, chunks hold about ``TARGET_TERMS`` sub-evaluations, so that working
    tensors stay in cache (a large tensor is slower per element on a CPU: each allocation is
    fresh memory), and at least ``MIN_PASSES`` passes when they can (Python overhead); on a
    GPU they are as large as the budget allows, since every chunk costs kernel launches and
    a GPU has no cache to fit.  Nothing exceeds ``budget_bytes``, down to one pixel and one
    orientation.

    :param fused: the orientation sums are compiled (``nbsim.engines.compiled``): fused into one loop,
        they keep nothing per sub-evaluation, so only the passes take memory.  Running products
        and interpolation keep every term whatever the engine: the plan counts them regardless.
    :param per_pass_lattices: every pass has lattices of its own (:class:`PassOrientations`
        with one table per pass), built outside the sums, fused or not.
    """
    Q = m.passes_per_pixel
    R = m.phisteps * m.domains
    budget = max(int(budget_bytes), 1)
    if m.config.crystal.interpolate:
        kept = BYTES_PER_TERM_INTERPOLATED
    elif running_products(m):
        kept = BYTES_PER_TERM_RUNNING
    else:
        kept = 0 if fused else BYTES_PER_TERM
    per_term = kept + (BYTES_PER_PASS_LATTICE if per_pass_lattices else 0)
    per_pass = BYTES_PER_PASS + (BYTES_PER_PASS_TABLE * m.phisteps if per_pass_lattices else 0)
    if records_gradients(m):
        per_term, per_pass = int(per_term * GRADIENT_FACTOR), int(per_pass * GRADIENT_FACTOR)
    orientation_chunk = min(R, ORIENTATION_BLOCK)
    if per_term:
        orientation_chunk = max(1, min(orientation_chunk, (budget // Q - per_pass) // per_term))
    pixels = int(m.rendered.shape[0])
    if m.device.type == "cpu":
        pixels = max(1, TARGET_TERMS // max(1, Q * orientation_chunk), MIN_PASSES // max(1, Q))
    pixels = max(1, min(pixels, budget // max(1, Q * (per_pass + orientation_chunk * per_term))))
    return min(pixels, max(1, int(m.rendered.shape[0]))), orientation_chunk


#: bytes a batch keeps per pass and image (its sum), and per pixel and image (its value)
BYTES_PER_PASS_IMAGE = 8
BYTES_PER_PIXEL_IMAGE = 16


def batch_plan(m: Model, budget_bytes: int, images: int) -> tuple[int, int, int]:
    """(pixels per chunk, orientations per block, images per block) for ``images`` images
    rendered together (:mod:`nbsim.engines.batch`; the common case's sums only).

    The blocks are an image's own (:func:`memory_plan`), so that each image is summed as its
    own render sums it.  Where an image's orientations fit in one block, several images share
    it: on a CPU as many as fill ``ORIENTATION_BLOCK`` orientations, with fewer pixels a chunk
    so that an evaluation keeps about ``TARGET_TERMS`` sub-evaluations (tensors that stay in
    cache); on a GPU as many as the budget holds beside the chunk's passes and every image's
    sums.
    """
    pixels, orientation_chunk = memory_plan(m, budget_bytes)
    Q, R = m.passes_per_pixel, m.phisteps * m.domains
    budget = max(int(budget_bytes), 1)
    per_pass = BYTES_PER_PASS + images * BYTES_PER_PASS_IMAGE + BYTES_PER_PIXEL_IMAGE * images // max(1, Q)
    pixels = max(1, min(pixels, budget // max(1, Q * (per_pass + orientation_chunk * BYTES_PER_TERM))))
    if R > orientation_chunk:
        return pixels, orientation_chunk, 1
    if m.device.type == "cpu":
        per_block = max(1, min(images, ORIENTATION_BLOCK // R))
        in_cache = max(1, TARGET_TERMS // (Q * R * per_block), MIN_PASSES // Q)
        return min(pixels, in_cache), orientation_chunk, per_block
    fitting = (budget // (pixels * Q) - per_pass) // (R * BYTES_PER_TERM)
    return pixels, orientation_chunk, max(1, min(images, fitting))
