"""The plugin system and the built-in physics objects.

``hookspecs`` (the hooks), ``system`` (loading plugins from entry points, or an in-test
list of plugin objects), ``registry`` (the registered objects by kind and name),
``selection`` (choosing one of each kind for a run) and ``compiled_forms`` (the scalar-form
contract of the numba engine); ``builtins`` registers the built-in lattice shapes,
polarization models and tracer.  Plugin protocols are in :mod:`nbsim.protocols`, their
contract suites in :mod:`nbsim.testing`.
"""
