"""Contracts of the objects plugins register (see ``docs/plugins.md``).

Every member of a protocol is part of its contract, the capabilities included (typed fields
such as ``LatticeFactor.needs_nearest``, optional methods such as ``compiled_form`` that
return None when the object has no such form): the registry refuses an object that lacks
one (:func:`missing_members`).  A plugin class that subclasses the protocol inherits the
defaults written here and declares only what differs.

Letters used in shapes: N passes in a chunk (one pass = one pixel, sensor layer, sub-pixel
and source, in the reference loop order), F phi steps.  Lengths are metres unless stated,
reciprocal vectors Å⁻¹, angles radians.  Every method must broadcast, preserve the dtype
and device of its inputs, stay differentiable (no ``.item()``, ``.detach()``, numpy
round-trips) and leave its inputs unmodified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
from torch import Tensor


@attrs.frozen(eq=False)
class Passes:
    """Where the passes of a chunk stand in the reference program's loop order.

    :ivar ordinal: (N,) int64, the pass's position in the single-thread loop order over the
        whole image (rows, columns, layers, sub-pixel rows, sub-pixel columns, sources).
    :ivar block: (N,) int64, the row block (OpenMP thread) the pass belongs to, for the
        policy's ``row_blocks``.
    :ivar executed: (N,) bool, whether the pass runs its phi loop (inside the ROI, not
        masked, not cut by ``-dmin``); passes of skipped pixels never appear.
    :ivar block_first: (B,) int64, ordinal of the first executed pass of each block, -1 for
        a block with none.
    """

    ordinal: Tensor
    block: Tensor
    executed: Tensor
    block_first: Tensor

    @property
    def first_in_block(self) -> Tensor:
        """(N,) bool: the pass is the first one its block executes."""
        return self.ordinal == self.block_first[self.block]


@runtime_checkable
class PhiPolicy(Protocol):
    """How each phi step orients the crystal.

    ``row_blocks`` is the number of contiguous row blocks the policy distinguishes (the
    reference program's OpenMP thread count; 1 when the policy does not depend on it).
    """

    name: str
    row_blocks: int

    def configure(self, options: Mapping[str, Any]) -> "PhiPolicy":
        """Return the policy with its plugin options applied (by their Python names:
        ``{"threads": 2}``); the default ignores them."""
        return self

    def orientations(self, base: Tensor, phi: Tensor, spindle: Tensor, passes: Passes) -> Tensor:
        """Lattice vectors for every (pass, phi step).

        :param base: (3, 3) rows a, b, c of the unrotated lattice (metres).
        :param phi: (F,) angles phi0 + phistep*p (radians, in double precision as computed).
        :param spindle: (3,) unit rotation axis.
        :param passes: the chunk's passes (see :class:`Passes`).
        :returns: (N, F, 3, 3) or (1, F, 3, 3) when every pass sees the same orientations;
            rows a, b, c, right-handed rotations about ``spindle``.
        """

    def shared_tables(self, base: Tensor, phi: Tensor, spindle: Tensor) -> Tensor | None:
        """(V, F, 3, 3) tables for a policy whose orientations depend on a pass at most
        through whether it is its row block's first executed pass, else None (the default).

        V = 1 when every pass gets the same orientations, V = 2 when that first pass differs
        (row 0: the other passes, row 1: the first).  Tables let the numba engine render with
        the policy and the tensor kernel keep two tables instead of one per pass; the contract
        suite checks them against ``orientations``.  Only a class that declares (or inherits)
        both methods together offers tables: a subclass that overrides ``orientations`` alone
        offers none.
        """
        return None


@runtime_checkable
class LatticeFactor(Protocol):
    """The crystal's shape transform F_latt at fractional Miller indices."""

    name: str
    #: whether ``evaluate`` reads ``hkl0``; False lets the kernel skip computing it (passing None)
    needs_nearest: bool = True
    #: whether ``evaluate`` reads ``reciprocal``; False lets images of different orientations
    #: share an evaluation (:mod:`nbsim.engines.batch`; the contract suite checks the claim)
    reads_reciprocal: bool = True
    #: whether F_latt is differentiable in hkl, the cell counts and fudge (the contract suite
    #: gradchecks it); False: its gradients must still be finite
    differentiable: bool = True

    def evaluate(self, hkl: Tensor, hkl0: Tensor, n_cells: Tensor, fudge: Tensor, reciprocal: Tensor) -> Tensor:
        """F_latt for every hkl.

        Miller indices always come in double precision (a single-precision index near 50 is
        only good to 4e-6); the other tensors, and the result, are in the render's working
        precision: compute ``hkl - hkl0`` (exact) before converting to it.

        :param hkl: (..., 3) fractional Miller indices, float64.
        :param hkl0: (..., 3) nearest integers, ceil(hkl - 0.5) (halves round down), float64;
            None when the implementation declares ``needs_nearest = False``.
        :param n_cells: (3,) unit cells along a, b, c.
        :param fudge: () width factor of the spot shapes.
        :param reciprocal: (3, 3) rows a*, b*, c* of the unrotated lattice (Å⁻¹).
        :returns: (...) lattice factor (an amplitude: the intensity uses its square).
        """

    def compiled_form(self) -> Any | None:
        """A numba cfunc of the same formula for the CPU loop (signature and layout:
        :mod:`nbsim.plugins.compiled_forms`), or None (the default: the numba engine refuses the
        factor).  The contract suite checks it against ``evaluate``; a subclass that overrides
        ``evaluate`` without its own compiled form has none."""
        return None


@runtime_checkable
class PolarizationModel(Protocol):
    """The polarization factor of a scattered ray."""

    name: str

    def factor(self, incident: Tensor, diffracted: Tensor, axis: Tensor, kahn: Tensor) -> Tensor:
        """Polarization factor for every (incident, diffracted) pair, broadcasting.

        :param incident: (..., 3) unit vectors from the source towards the sample.
        :param diffracted: (..., 3) unit vectors from the sample towards the pixel.
        :param axis: (3,) unit E-vector direction of the beam (the ``-polar_vector``).
        :param kahn: () Kahn polarization factor (0 unpolarized, 1 fully polarized).
        :returns: (...) factor multiplying the intensity.
        """

    def compiled_form(self) -> Any | None:
        """A numba cfunc of the same factor for the CPU loop (:mod:`nbsim.plugins.compiled_forms`),
        or None (the default: the numba engine refuses the model); as for lattice factors."""
        return None


@runtime_checkable
class ImageTransform(Protocol):
    """A transform of whole rendered panels, run by the image stage (``nbsim.engines.image_stage``)
    after the render and before any output: a point-spread function, a gain, a noise model.

    ``halo`` is how far (in pixels, along fast and slow) the value of a pixel may depend on
    its neighbours: 0 for a pixel-wise transform.  A render of a region or a list of pixels
    renders that far around them (across the ROI and mask, never across panels), so that
    they get the values a whole render gives them.
    """

    name: str
    halo: int

    def configure(self, options: Mapping[str, Any]) -> "ImageTransform":
        """Return the transform with its plugin options applied (by their Python names); the
        default ignores them."""
        return self

    def apply(self, image: Tensor, model: Any) -> Tensor:
        """The transformed image.

        :param image: (K, S, F) every panel, in the render's accumulation precision (float64);
            0 where nothing was rendered.
        :param model: the :class:`nbsim.model.build.Model` rendered (panels, pixel sizes, beam, ...).
        :returns: (K, S, F), same dtype and device; a pixel may depend only on pixels of its
            own panel within ``halo``.
        """


@attrs.frozen(eq=False)
class ResponseContext:
    """What a detector response sees besides the image.

    :ivar pixel_size: (K,) metres, each panel's pixel size.
    :ivar random: for a random response, a :class:`nbsim.physics.counter_random.CounterRandom`
        seeded for this step of the chain (from the response's own ``seed=`` option, else from
        the run's noise seed and the step's position); None for a response that is not random.
        Its values are functions of (seed, pixel), so a response that draws one value per
        pixel of the (K, S, F) image (``random.normal(image.shape, ...)``) records the same
        image whatever the chunking or device.
    :ivar config: the run's :class:`nbsim.model.config.RunConfig`.
    :ivar notes: a list a response may append remarks to (said on stderr: overloads, ...).
    """

    pixel_size: Tensor
    random: Any
    config: Any
    notes: list


@runtime_checkable
class DetectorResponse(Protocol):
    """One step of the detector's response (``--response NAME:key=value,...``, in order), from
    the ideal photon image to what the detector records: a point-spread function, a gain, a
    noise, an offset, saturation.  Run on whole panels after the image stage.

    ``differentiable``: the output is differentiable in the image (checked by gradcheck);
    ``random``: it draws from ``context.random`` (and only from it: the same seed gives the
    same output); ``conserves_total``: the sum over a panel is kept for an image
    well inside it (point-spread functions).
    """

    name: str
    differentiable: bool
    random: bool
    conserves_total: bool

    def configure(self, options: Mapping[str, str]) -> "DetectorResponse":
        """The response with the ``key=value`` options of its ``--response`` (values as text);
        an unknown key or a bad value raises ValueError saying which and why."""
        return self

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        """The response to ``image`` (K, S, F), float64 or float32: same shape, dtype and device;
        a pixel may depend on pixels of its own panel only."""


_FIELD_TYPES = {"str": str, "int": int, "bool": bool}
_PROTOCOLS = (PhiPolicy, LatticeFactor, PolarizationModel, ImageTransform, DetectorResponse)


def offers(obj: Any, capability: str, method: str) -> bool:
    """Whether ``obj`` offers the optional ``capability`` (``compiled_form``, ``shared_tables``)
    for its ``method``: the capability must come from a class at or below the one that
    defines the method, so that a subclass overriding the method alone does not inherit a
    form or tables made for its parent's physics (nor the protocol's default)."""
    mro = type(obj).__mro__
    declared = next((c for c in mro if capability in vars(c)), None)
    defined = next((c for c in mro if method in vars(c)), None)
    return declared is not None and defined is not None and issubclass(declared, defined) and declared not in _PROTOCOLS


def missing_members(obj: Any, protocol: type) -> list[str]:
    """What ``obj`` lacks of ``protocol``'s contract: missing members, and typed fields
    (``str``, ``int``, ``bool``) holding a value of another type, as readable phrases."""
    problems = []
    fields = {k: v for k, v in protocol.__annotations__.items() if not k.startswith("_")}
    methods = [k for k, v in vars(protocol).items() if callable(v) and not k.startswith("_")]
    for name in [*fields, *methods]:
        if not hasattr(obj, name):
            problems.append(f"no {name}")
        elif name in fields and fields[name] in _FIELD_TYPES:
            value, expected = getattr(obj, name), _FIELD_TYPES[fields[name]]
            # bool is an int in Python; an int field must not take one by accident, nor the reverse
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                problems.append(f"{name} is {value!r}, not a {fields[name]}")
        elif name in methods and not callable(getattr(obj, name)):
            problems.append(f"{name} is not callable")
    return problems
