"""Detectors described by geometry files (``--detector FILE``): what every format gives, and
nbsim's own panel list.

Three formats are read, chosen by content: a DIALS experiment list (:mod:`nbsim.io.expt`), a
CrystFEL geometry file (:mod:`nbsim.io.crystfel`) and nbsim's panel list, a JSON object in
nanoBragg's laboratory frame with the command line's units (``specs/inputs.md``)::

    {"nbsim_panels": 1, "beam": [1, 0, 0],
     "panels": [{"name": "p0", "origin_mm": [100, 51.25, -51.25], "fast": [0, 0, 1], "slow": [0, -1, 0],
                 "pixel_mm": 0.1, "size": [1025, 1025], "thickness_um": 450, "attenuation_depth_um": 300}]}

Every reader returns a :class:`DetectorFile` in nanoBragg's frame, metres; :func:`checked`
refuses what nbsim cannot render (panels of different sizes) or what cannot be meant
(zero-size panels, panels that overlap).
"""

from __future__ import annotations

import json
import math

import attrs
import numpy as np

from nbsim.errors import InputError
from nbsim.model.config import PanelConfig, Vec3

FLAG = "--detector"


@attrs.frozen
class DetectorFile:
    """The detector a file describes, in nanoBragg's laboratory frame."""

    path: str
    kind: str  # the format, for messages
    panels: tuple[PanelConfig, ...]
    #: the beam's direction of travel the file's geometry refers to (None: the command line's)
    beam: Vec3 | None = None
    wavelength: float | None = None  # metres, where the file gives one
    #: whether the file gives the sensor (a thickness > 0 and its attenuation); else the
    #: command line's -detector_thick and -detector_abs apply
    sensor: bool = False


def read(path: str) -> DetectorFile:
    """The detector of the geometry file ``path`` (a one-line :class:`InputError` if unusable)."""
    from nbsim.io import crystfel, expt

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{FLAG}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.lstrip().startswith(("{", "[")):
        return checked(crystfel.read_detector(path, text))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{FLAG}: {path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(document, dict) and document.get("__id__") == "ExperimentList":
        return checked(expt.read_detector(path, document))
    if isinstance(document, dict) and "nbsim_panels" in document:
        return checked(_nbsim_panels(path, document))
    raise InputError(f"{FLAG}: {path} is neither a DIALS experiment list nor an nbsim panel list "
                     "(nor a CrystFEL geometry file)")


def _nbsim_panels(path: str, document: dict) -> DetectorFile:
    if document["nbsim_panels"] != 1:
        raise InputError(f"{FLAG}: {path}: nbsim panel list version {document['nbsim_panels']!r} (this nbsim reads 1)")
    panels, sensors = [], set()
    for i, p in enumerate(_listed(path, document, "panels")):
        where = f"{FLAG}: {path}: panel {i}"
        try:
            fpixels, spixels = (int(n) for n in p["size"])
            thickness = float(p.get("thickness_um", 0.0)) * 1e-6
            depth = p.get("attenuation_depth_um")
            mu = 0.0 if depth is None else 1.0 / (float(depth) * 1e-6)
            extra = {} if "normal" not in p else {"normal": p["normal"]}
            panels.append(PanelConfig(name=str(p.get("name", f"panel {i}")),
                                      origin=[float(x) / 1000.0 for x in p["origin_mm"]], fast=p["fast"],
                                      slow=p["slow"], pixel_size=float(p["pixel_mm"]) / 1000.0, fpixels=fpixels,
                                      spixels=spixels, thickness=thickness, mu=mu, **extra))
        except KeyError as exc:
            raise InputError(f"{where} has no {exc.args[0]!r}") from None
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            raise InputError(f"{where}: {exc}") from None
        sensors.add(thickness > 0)
    beam = document.get("beam")
    if beam is not None:
        beam = _unit(beam, f"{FLAG}: {path}: beam")
    return DetectorFile(path=path, kind="nbsim panel list", panels=tuple(panels), beam=beam,
                        sensor=True in sensors)


def _listed(path: str, document: dict, key: str) -> list:
    items = document.get(key)
    if not isinstance(items, list) or not items or not all(isinstance(x, dict) for x in items):
        raise InputError(f"{FLAG}: {path}: {key!r} must be a non-empty list of objects")
    return items


def _unit(v, where: str) -> Vec3:
    try:
        v = np.asarray(v, dtype=float).reshape(3)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected three numbers, got {v!r}") from None
    n = float(np.linalg.norm(v))
    if not (n > 0 and math.isfinite(n)):
        raise InputError(f"{where}: not a direction: {v.tolist()!r}")
    return tuple((v / n).tolist())


def checked(file: DetectorFile) -> DetectorFile:
    """``file`` if nbsim can render its panels: one pixel count for all, none of zero size, and
    no two where one covers the other (as seen from the sample); each panel's normal turned
    away from the sample (formats give fast and slow axes, whose cross product may face it)."""
    where = f"{FLAG}: {file.path}"
    file = attrs.evolve(file, panels=tuple(
        attrs.evolve(p, normal=[-x for x in p.normal]) if np.dot(p.origin, p.normal) < 0 else p
        for p in file.panels))
    first = file.panels[0]

    def label(p: PanelConfig) -> str:
        return repr(p.name) if p.name else f"panel {file.panels.index(p)}"

    for p in file.panels:
        if abs(float(np.dot(p.fast, p.slow))) > 1e-6:
            raise InputError(f"{where}: {label(p)}: the fast and slow axes are not perpendicular")
        if (p.fpixels, p.spixels) != (first.fpixels, first.spixels):
            raise InputError(f"{where}: {label(p)} has {p.fpixels}x{p.spixels} pixels and {label(first)} "
                             f"{first.fpixels}x{first.spixels}: nbsim's panels share one size")
    for a, b in _overlapping(file.panels):
        raise InputError(f"{where}: {label(file.panels[a])} and {label(file.panels[b])} overlap")
    return file


def _overlapping(panels) -> list[tuple[int, int]]:
    """Pairs (a, b) of panels where some point of b, a pixel or more inside its edges, is hidden
    behind (or lies on) panel a on its ray from the sample."""
    pairs = []
    grid = np.linspace(0.0, 1.0, 5)
    for b, q in enumerate(panels):
        # points of q inset by one pixel, so that panels touching at their edges do not count
        inset_f = 1.0 / q.fpixels + grid * (1.0 - 2.0 / q.fpixels)
        inset_s = 1.0 / q.spixels + grid * (1.0 - 2.0 / q.spixels)
        size_f, size_s = q.fpixels * q.pixel_size, q.spixels * q.pixel_size
        points = (np.asarray(q.origin) + (inset_f[:, None, None] * size_f) * np.asarray(q.fast)
                  + (inset_s[None, :, None] * size_s) * np.asarray(q.slow)).reshape(-1, 3)
        for a, p in enumerate(panels):
            if a == b:
                continue
            normal = np.asarray(p.normal)
            along = points @ normal
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = float(np.dot(p.origin, normal)) / along  # where each ray meets p's plane
            hit = points * scale[:, None] - np.asarray(p.origin)
            u = hit @ np.asarray(p.fast) / (p.fpixels * p.pixel_size)
            v = hit @ np.asarray(p.slow) / (p.spixels * p.pixel_size)
            inside = (scale > 0) & (scale <= 1 + 1e-9) & (u > 0) & (u < 1) & (v > 0) & (v < 1)
            if inside.any() and (min(a, b), max(a, b)) not in pairs:
                pairs.append((min(a, b), max(a, b)))
    return pairs
