"""Configuration and model: what is rendered.

``config`` holds the resolved, plain-number description of a run (a :class:`RunConfig`);
``build`` turns it into the tensors of a render (a :class:`Model`): the detector placed
(``geometry``) as a list of ``panels``, the crystal lattice (``crystal``) and the beam's
sources (``sources``), every continuous parameter differentiable.
"""
