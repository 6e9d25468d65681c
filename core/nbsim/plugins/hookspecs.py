"""Hook specifications of nbsim's plugin system (pluggy project name ``nbsim``).

Plugins register *objects*; the objects do the work.  The ``nbsim_register_*`` hooks run
once per process when plugins are loaded and receive a ``register`` callable; the per-chunk
numerics are methods of the registered objects, whose contracts are the protocols in
:mod:`nbsim.protocols`.  ``nbsim_trace`` is a broadcast hook called during rendering for
traced pixels only.  Every hook is documented in ``docs/plugins.md`` with this signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("nbsim")
hookimpl = pluggy.HookimplMarker("nbsim")


@hookspec
def nbsim_register_phi_policies(register: Callable[[Any], None]) -> None:
    """Register phi-rotation policies.

    Called once when plugins are loaded.  Call ``register(policy)`` for every policy the
    plugin provides; ``policy`` satisfies :class:`nbsim.protocols.PhiPolicy` and its
    ``name`` is what ``--phi-policy NAME`` selects.

    :param register: callable taking one policy object; a name registered twice is an error.
    """


@hookspec
def nbsim_register_lattice_factors(register: Callable[[Any], None]) -> None:
    """Register lattice (crystal shape) factors.

    Called once when plugins are loaded.  Call ``register(factor)`` for every
    :class:`nbsim.protocols.LatticeFactor` the plugin provides; ``--lattice NAME`` selects it
    (the built-in ``square``, ``round``, ``gauss`` and ``tophat`` are chosen by the nanoBragg
    shape flags).

    :param register: callable taking one lattice-factor object.
    """


@hookspec
def nbsim_register_polarization_models(register: Callable[[Any], None]) -> None:
    """Register polarization models.

    Called once when plugins are loaded.  Call ``register(model)`` for every
    :class:`nbsim.protocols.PolarizationModel` the plugin provides; ``--polarization NAME``
    selects it (the built-in ``kahn`` and ``none`` follow ``-polar`` and ``-nopolar``).

    :param register: callable taking one polarization-model object.
    """


@hookspec
def nbsim_register_image_transforms(register: Callable[[Any], None]) -> None:
    """Register image transforms (point-spread functions, gains, noise models).

    Called once when plugins are loaded.  Call ``register(transform)`` for every
    :class:`nbsim.protocols.ImageTransform` the plugin provides; ``--image-stage NAME,...``
    runs the named ones, in that order, on every rendered image (``nbsim.engines.image_stage``).

    :param register: callable taking one image-transform object.
    """


@hookspec
def nbsim_register_detector_responses(register: Callable[[Any], None]) -> None:
    """Register detector responses (point-spread functions, gains, noises, offsets, saturation).

    Called once when plugins are loaded.  Call ``register(response)`` for every
    :class:`nbsim.protocols.DetectorResponse` the plugin provides; ``--response NAME:k=v,...``
    (repeatable) chains the named ones, in order, from the ideal image to the recorded one
    (``nbsim.outputs.response``).

    :param register: callable taking one detector-response object.
    """


@hookspec
def nbsim_register_options(register: Callable[..., None]) -> None:
    """Register command-line options of ``nbsim run`` that a plugin needs.

    Called once when the command line is built.  Call
    ``register(name, *, keyword, type, default, help, owner)`` for each option: ``name`` is the
    double-dash spelling (``"--c-threads"``), ``keyword`` the Python name under which its value
    reaches the object's ``configure(options)`` (``"threads"``; default: the spelling without
    dashes, ``-`` as ``_``), ``owner`` the name of the registered object the option configures.
    Python callers pass the same keywords (``select_physics(..., options={"threads": 2})``).
    Giving the option while another object is selected is an error.

    :param register: callable declaring one option.
    """


@hookspec
def nbsim_trace(stage: str, chunk: Mapping[str, Any], tensors: Mapping[str, Any]) -> None:
    """Receive intermediate quantities of traced pixels.

    Called once per render and stage, after the image is rendered, only when some pixel is
    traced (``-printout``, ``-printout_pixel``, ``-trace_pixel``) and some plugin implements
    this hook.  The traced pixels are evaluated again, one at a time, by the tensor kernel
    (whatever engine rendered the image), in double precision on the render's device.

    Shapes: P traced pixels, T sensor layers, n sub-pixels per side, S sources, Q = T*n*n*S
    passes per pixel, R = phi steps x mosaic domains (phi-major).  Lengths in metres,
    reciprocal quantities in Å⁻¹.

    * ``"geometry"``: ``panel``, ``fast``, ``slow`` (P,) indices; ``position`` (P, T, n, n, 3) sub-pixel
      positions; ``diffracted`` (P, T, n, n, 3) unit vectors; ``airpath`` (P, T, n, n);
      ``omega`` (P, T, n, n) solid angles; ``capture`` (P, T, n, n) capture fractions, or
      None without a sensor thickness; ``scattering`` (P, T, n, n, S, 3); ``survive``
      (P, T, n, n, S) bool, passes left by ``-dmin``; ``polar`` (P, T, n, n, S); ``incident``
      (S, 3) the sources' unit vectors (the same for every pixel).
    * ``"scattering"``: ``hkl``, ``hkl0`` (P, Q, R, 3) fractional and nearest indices;
      ``F_latt``, ``F_cell``, ``term`` (P, Q, R); ``lattice`` (1 or P*Q, R, 3, 3) the lattice
      vectors (rows a, b, c); ``r0`` the first orientation of the block (an int).
    * ``"pixel"``: ``I``, ``value``, ``omega``, ``capture``, ``polar`` (P,) the accumulated
      intensity, the pixel value and the factors it was multiplied by; ``steps`` (an int).

    :param stage: one of ``"geometry"``, ``"scattering"``, ``"pixel"``, in that order.
    :param chunk: plain facts: ``fast`` and ``slow`` (lists of the traced pixels' indices),
        ``steps``, ``config`` (the RunConfig), ``wavelength`` (m), ``format`` ("printout").
    :param tensors: as listed above; read them, never modify them.
    """
