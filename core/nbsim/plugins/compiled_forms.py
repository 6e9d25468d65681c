"""Compiled forms of physics objects: how a plugin gets the numba engine (``nbsim.engines.numba_engine``).

Lattice factors and polarization models have one tensor form each and may offer a compiled
one; the loop calls it through its pointer (or inlines it, for the built-ins' forms, which
it recognises: ``nbsim.plugins.builtins.lattice_forms``, ``nbsim.plugins.builtins.polarization_forms``).

A lattice factor has one tensor form (``evaluate``) and may offer a compiled one for the CPU
loop: its method ``compiled_form()`` returns a numba ``cfunc`` of :func:`lattice_signature`,
which evaluates F_latt for a block of Miller indices::

    form(hkl, n, params, out)

    hkl     float64*, 3n values: h[0:n], then k[0:n], then l[0:n] (fractional, double precision)
    n       the number of evaluations
    params  float64*, LATTICE_PARAMS values: Na, Nb, Nc, fudge, then a*, b*, c* (Å⁻¹, row by row)
    out     float64*, n values: F_latt (an amplitude; the loop squares it)

The loop calls it once per block of pixels and orientation, so a call costs little and the
form's own loop vectorizes; the loop is compiled once for every form (the form is a
first-class function argument, not part of the loop's code) and stays cached on disk.  The
contract suite (``nbsim.testing.lattice``) checks the form against ``evaluate``.

A polarization model's ``compiled_form()`` returns a cfunc of :func:`polarization_signature`,
called once per block of pixels, pass and source.  This module imports numba only when a
signature is asked for.
"""

from __future__ import annotations

from nbsim.protocols import offers

#: Na, Nb, Nc, fudge, a* (3), b* (3), c* (3)
LATTICE_PARAMS = 13


def lattice_signature():
    """The numba signature of a lattice factor's compiled form (see the module text)."""
    from numba import types

    double_p = types.CPointer(types.float64)
    return types.void(double_p, types.intp, double_p, double_p)


def lattice_form_of(lattice) -> object | None:
    """The compiled form ``lattice`` offers, or None.

    An offer covers the ``evaluate`` of the class that makes it: a subclass that overrides
    ``evaluate`` without offering a form of its own has none.
    """
    if not offers(lattice, "compiled_form", "evaluate"):
        return None
    _prepare_numba()
    return lattice.compiled_form()


#: Kahn factor, then the polarization axis (x, y, z)
POLARIZATION_PARAMS = 4


def polarization_signature():
    """The numba signature of a polarization model's compiled form::

        form(incident, diffracted, n, params, out)

        incident    float64*, 3 values: the unit vector from the source towards the sample
        diffracted  float64*, 3n values: x[0:n], then y[0:n], then z[0:n], unit vectors
        n           the number of diffracted directions
        params      float64*, POLARIZATION_PARAMS values: the Kahn factor, then the axis (x, y, z)
        out         float64*, n values: the factor of each direction
    """
    from numba import types

    double_p = types.CPointer(types.float64)
    return types.void(double_p, double_p, types.intp, double_p, double_p)


def polarization_form_of(model) -> object | None:
    """The compiled form a polarization model offers, or None (the rule of :func:`lattice_form_of`,
    for ``factor``)."""
    if not offers(model, "compiled_form", "factor"):
        return None
    _prepare_numba()
    return model.compiled_form()


def _prepare_numba() -> None:
    """Set numba up (cache directory, vector width: ``nbsim.physics.jit``) before a form is compiled or
    loaded: the first code numba compiles fixes the machine settings of everything after it."""
    from nbsim.physics import jit

    jit.numba()
