"""Outputs: from a rendered image to the files and lines a run leaves.

Image statistics (``statistics``), the reference's printout (``report``), the integer,
PGM and SMV images (``image_files``) and the reference's Poisson noise image (``noise``,
``noise_loop``).  File formats themselves live in :mod:`nbsim.io`.
"""
