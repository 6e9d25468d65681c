"""The experiment a run simulated, for the DIALS experiment list (``--export-expt``,
:mod:`nbsim.io.expt` writes the file)."""

from __future__ import annotations

from nbsim.io import expt


def simulated_experiment(config, model, *, image: str) -> expt.Experiment:
    """The experiment a run simulated (its placed panels, beam, crystal and scan)."""
    b, s, P = config.beam, config.sampling, model.panels
    panels = [expt.PanelGeometry(origin=P.origin[k].tolist(), fast=P.fast[k].tolist(), slow=P.slow[k].tolist(),
                                 pixel_size=float(P.pixel_size[k]), fpixels=P.fpixels, spixels=P.spixels,
                                 thickness=float(P.thickness[k]),
                                 mu=float(P.mu[k]) if P.thickness[k] > 0 else 0.0,  # a thin sensor's -1: unused
                                 name=config.detector.panels[k].name if config.detector.panels else "")
              for k in range(P.count)]
    return expt.Experiment(
        beam=b.direction, wavelength=b.wavelength, polarization_axis=b.polar_vector,
        kahn=0.0 if b.nopolar else b.polarization, panels=panels, real_space=model.lattice.real.tolist(),
        spindle=s.spindle_axis, phi0=s.phi0, osc=s.osc, exposure=b.exposure, image=image,
    )
