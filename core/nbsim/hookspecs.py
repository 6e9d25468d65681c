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

    Called during rendering, once per chunk and stage, only when some pixel of the chunk is
    traced (``-printout``, ``-printout_pixel``, ``-trace_pixel``) and some plugin implements
    this hook.  Stages, in order: ``"geometry"`` (sub-pixel positions, diffracted directions,
    solid angle, capture fraction), ``"scattering"`` (scattering vector, fractional and
    rounded hkl, F_cell, F_latt, polarization for each sub-evaluation) and ``"pixel"``
    (accumulated intensity, the applied factors and the final pixel value).

    :param stage: one of ``"geometry"``, ``"scattering"``, ``"pixel"``.
    :param chunk: facts about the chunk: ``fast`` and ``slow`` indices of the traced pixels,
        ``steps``, the config, the loop sizes.
    :param tensors: tensors of the traced pixels only, first dimension = traced pixel.
    """
