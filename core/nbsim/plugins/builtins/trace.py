"""The built-in pixel tracer: ``-printout``, ``-printout_pixel FAST SLOW``, ``-trace_pixel SLOW FAST``.

For every traced pixel it prints the reference program's fourteen ``-printout`` lines: the
values of the last sub-evaluation of the pixel (position, sin(theta)/lambda, hkl and its
nearest integers, F_cell, F_latt, the accumulated intensity, the polarization, solid angle
and capture fraction applied, the pixel value and the real-space cell of the last domain).
"""

from __future__ import annotations

import math

import torch

from nbsim.plugins.hookspecs import hookimpl


class BuiltinTracePlugin:
    def __init__(self) -> None:
        self._stages: dict[str, dict] = {}

    @hookimpl
    def nbsim_trace(self, stage, chunk, tensors):
        if chunk.get("format") != "printout":
            return
        self._stages[stage] = tensors
        if stage == "pixel":
            for line in printout_lines(chunk, self._stages):
                print(line)
            self._stages = {}


def printout_lines(chunk, stages) -> list[str]:
    geo, scat, pix = stages["geometry"], stages["scattering"], stages["pixel"]
    lines = []
    lam0 = chunk["wavelength"]
    with torch.no_grad():
        for p, (fast, slow) in enumerate(zip(chunk["fast"], chunk["slow"])):
            pos = geo["position"][p, -1, -1, -1].tolist()
            scattering = geo["scattering"][p, -1, -1, -1, -1]
            stol = 0.5 * math.sqrt(float((scattering * scattering).sum()))
            twotheta = math.atan2(math.sqrt(pos[1] * pos[1] + pos[2] * pos[2]), pos[0])
            test = math.sin(twotheta / 2.0) / (lam0 * 1e10)
            survive = geo["survive"][p].reshape(-1)
            alive = torch.nonzero(survive).flatten()
            if len(alive):
                q = int(alive[-1])
                hkl = scat["hkl"][p, q, -1].tolist()
                hkl0 = [int(x) for x in scat["hkl0"][p, q, -1].tolist()]
                F_cell = float(scat["F_cell"][p, q, -1])
                F_latt = float(scat["F_latt"][p, q, -1])
            else:
                q = survive.numel() - 1
                hkl, hkl0, F_cell, F_latt = [0.0] * 3, [0] * 3, 0.0, 0.0
            lat = scat["lattice"]
            if lat.shape[0] == 1:
                cell = lat[0, -1] * 1e10
            else:
                cell = lat.reshape(len(chunk["fast"]), -1, *lat.shape[1:])[p, q, -1] * 1e10
            I = float(pix["I"][p])
            value = float(torch.tensor(float(pix["value"][p]), dtype=torch.float32))
            lines += [
                "%4d %4d : stol = %g or %g" % (fast, slow, stol, test),
                "at %g %g %g" % tuple(pos),
                "hkl= %f %f %f  hkl0= %d %d %d" % (*hkl, *hkl0),
                " F_cell=%g  F_latt=%g   I = %g" % (F_cell, F_latt, I),
                "I/steps %15.10g" % (I / pix["steps"]),
                "polar   %15.10g" % float(pix["polar"][p]),
                "omega   %15.10g" % float(pix["omega"][p]),
                "capfrac %15.10g" % float(pix["capture"][p]),
                "pixel   %15.10g" % value,
                "real-space cell vectors (Angstrom):",
                "     %-10s  %-10s  %-10s" % ("a", "b", "c"),
            ]
            for axis, label in enumerate("XYZ"):
                lines.append("%s: %11.8f %11.8f %11.8f" % (label, *(float(cell[v, axis]) for v in range(3))))
    return lines
