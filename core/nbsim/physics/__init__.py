"""The formulas every engine shares, written once for tensors and for numbers.

``pass_quantities`` (sub-pixel position, direction, solid angle, capture fraction,
scattering vector, the -dmin cut) on ``vectors`` and ``dual_math``; ``trig`` (the reduced
sin(pi x) of sharp lattice factors); ``rng`` (the reference program's random generators).
"""
