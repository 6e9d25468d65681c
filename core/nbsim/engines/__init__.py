"""Engines: how a render is evaluated.

``pipeline.render`` splits a model's pixels into chunks that fit the memory budget, lets
``choice`` pick the engine that renders them (the tensor kernel, the numba loop or the
torch.compile'd kernel), runs the image stage on whole panels and gathers the image.
"""
