"""DIALS experiment lists (``.expt`` JSON): what a run simulated, in the DIALS laboratory frame.

The DIALS (imgCIF) frame has X along the goniometer axis and +Z from the sample towards the
source.  nanoBragg's frame maps onto it as the reference program prints its "DIALS origin"
(:func:`nbsim.model.geometry.in_dials_frame`, a proper rotation), so every vector and the
rotation sense carry over (``specs/outputs.md``).  Lengths are millimetres, wavelengths and cell vectors Å, angles degrees.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import attrs
import numpy as np

from nbsim.errors import InputError
from nbsim.io.detector_file import FLAG, DetectorFile
from nbsim.model.config import PanelConfig
from nbsim.model.geometry import from_dials_frame, in_dials_frame

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def to_dials(v) -> list[float]:
    """A vector of nanoBragg's frame in the DIALS frame, as plain numbers."""
    return [float(c) for c in in_dials_frame(list(v))]


@attrs.frozen(kw_only=True)
class PanelGeometry:
    """One flat panel, nanoBragg frame, metres."""

    origin: Sequence[float]  # sample -> outer corner of pixel (0, 0)
    fast: Sequence[float]
    slow: Sequence[float]
    pixel_size: float
    fpixels: int
    spixels: int
    thickness: float
    mu: float  # 1/m
    name: str = ""


@attrs.frozen(kw_only=True)
class Experiment:
    """A simulated image in nanoBragg's frame (SI units, radians)."""

    beam: Sequence[float]  # propagation direction, unit
    wavelength: float
    polarization_axis: Sequence[float]  # the E vector
    kahn: float  # Kahn polarization factor
    panels: Sequence[PanelGeometry]
    real_space: Sequence[Sequence[float]]  # rows a, b, c in Å, after the misset, at phi = 0
    spindle: Sequence[float]
    phi0: float
    osc: float  # 0: a still (no goniometer, no scan; the crystal at phi0)
    exposure: float
    image: str  # the image file the experiment refers to
    frames: int = 1  # images of a rotation sweep, frame i from phi0 + i osc (the first numbered 1)
    template: str | None = None  # their file names, '#' for the number (DIALS' ImageSequence), or one file
    frame: int | None = None  # the image's frame in a file of many (a NeXus file)
    trusted_max: float = 65535.0


def _rotated(v, axis, angle) -> np.ndarray:
    """Rodrigues' rotation of ``v`` about the unit ``axis`` by ``angle`` (right-handed)."""
    v, k = np.asarray(v, dtype=float), np.asarray(axis, dtype=float)
    return v * math.cos(angle) + np.cross(k, v) * math.sin(angle) + k * np.dot(k, v) * (1 - math.cos(angle))


def _panel(p: PanelGeometry) -> dict:
    return {
        "name": p.name or "panel", "type": "SENSOR_PAD",
        "fast_axis": to_dials(p.fast), "slow_axis": to_dials(p.slow),
        "origin": [1000.0 * c for c in to_dials(p.origin)],
        "raw_image_offset": [0, 0], "image_size": [p.fpixels, p.spixels],
        "pixel_size": [1000.0 * p.pixel_size, 1000.0 * p.pixel_size], "trusted_range": [0.0, 65535.0],
        "thickness": 1000.0 * p.thickness, "material": "Si" if p.thickness > 0 else "",
        "mu": p.mu / 1000.0, "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
        "px_mm_strategy": {"type": "SimplePxMmStrategy"},
    }


def _beam(e: Experiment) -> dict:
    beam = np.asarray(to_dials(e.beam))
    axis = np.asarray(to_dials(e.polarization_axis))
    normal = np.cross(axis, beam)
    normal = normal / np.linalg.norm(normal) if np.linalg.norm(normal) > 0 else np.array([0.0, 1.0, 0.0])
    return {"__id__": "monochromatic", "direction": (-beam).tolist(), "wavelength": e.wavelength * 1e10,
            "divergence": 0.0, "sigma_divergence": 0.0, "polarization_normal": normal.tolist(),
            "polarization_fraction": (1.0 + e.kahn) / 2.0, "flux": 0.0, "transmission": 1.0,
            "probe": "x-ray", "sample_to_source_distance": 0.0}


def _detector(e: Experiment) -> dict:
    root = {"name": "", "type": "", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, 1.0, 0.0],
            "origin": [0.0, 0.0, 0.0], "raw_image_offset": [0, 0], "image_size": [0, 0], "pixel_size": [0.0, 0.0],
            "trusted_range": [0.0, 0.0], "thickness": 0.0, "material": "", "mu": 0.0, "identifier": "", "mask": [],
            "gain": 1.0, "pedestal": 0.0, "px_mm_strategy": {"type": "SimplePxMmStrategy"},
            "children": [{"panel": i} for i in range(len(e.panels))]}
    return {"panels": [_panel(p) for p in e.panels], "hierarchy": root}


def _crystal(e: Experiment) -> dict:
    real = [np.asarray(to_dials(v)) for v in e.real_space]
    if e.osc == 0.0:  # no goniometer: the crystal as it stood
        real = [_rotated(v, to_dials(e.spindle), e.phi0) for v in real]
    return {"__id__": "crystal", "real_space_a": real[0].tolist(), "real_space_b": real[1].tolist(),
            "real_space_c": real[2].tolist(), "space_group_hall_symbol": " P 1"}


def _imageset(e: Experiment) -> dict:
    common = {"mask": None, "gain": None, "pedestal": None, "dx": None, "dy": None, "params": {}}
    if e.template is not None:
        frames = {} if "#" in e.template else {"single_file_indices": list(range(e.frames))}
        return {"__id__": "ImageSequence", "template": e.template, **frames, **common}
    frame = {} if e.frame is None else {"single_file_indices": [e.frame]}
    return {"__id__": "ImageSet", "images": [e.image], **frame, **common}


def _scan(e: Experiment) -> dict:
    angles = [math.degrees(e.phi0 + i * e.osc) for i in range(e.frames)]
    return {"image_range": [1, e.frames], "batch_offset": 0, "valid_image_ranges": {},
            "properties": {"epochs": [float(i) for i in range(e.frames)],
                           "exposure_time": [float(e.exposure)] * e.frames, "oscillation": angles,
                           "oscillation_width": [math.degrees(e.osc)] * e.frames}}


def experiment_list(experiments: Experiment | Sequence[Experiment]) -> dict:
    """The experiment list of one experiment (an image, or a rotation sweep of ``frames``) or of
    several (stills): models that are equal are written once and shared."""
    if isinstance(experiments, Experiment):
        experiments = [experiments]
    out = {"__id__": "ExperimentList", "experiment": [], "imageset": [], "beam": [], "detector": [],
           "goniometer": [], "scan": [], "crystal": [], "profile": [], "scaling_model": []}

    def index(kind: str, model: dict) -> int:
        models = out[kind]
        if model not in models:
            models.append(model)
        return models.index(model)

    for e in experiments:
        entry = {"__id__": "Experiment", "identifier": "", "beam": index("beam", _beam(e)),
                 "detector": index("detector", _detector(e)), "crystal": len(out["crystal"]),
                 "imageset": len(out["imageset"])}
        out["crystal"].append(_crystal(e))
        out["imageset"].append(_imageset(e))
        if e.osc != 0.0:
            entry["goniometer"] = index("goniometer", {"rotation_axis": to_dials(e.spindle),
                                                       "fixed_rotation": IDENTITY, "setting_rotation": IDENTITY})
            entry["scan"] = len(out["scan"])
            out["scan"].append(_scan(e))
        out["experiment"].append(entry)
    return out


def encode(experiments: Experiment | Sequence[Experiment]) -> bytes:
    return (json.dumps(experiment_list(experiments), indent=2) + "\n").encode()


def read_detector(path: str, document: dict) -> DetectorFile:
    """The detector (and the beam it refers to) of the DIALS experiment list ``document`` read
    from ``path``: every panel, placed through the detector's hierarchy, in nanoBragg's frame."""
    where = f"{FLAG}: {path}"
    detectors = document.get("detector") or []
    if len(detectors) != 1:
        raise InputError(f"{where}: holds {len(detectors)} detectors (nbsim reads a list with one)")
    detector = detectors[0]
    listed = detector if isinstance(detector, list) else detector.get("panels")
    if not isinstance(listed, list) or not listed:
        raise InputError(f"{where}: the detector has no panels")
    placed = _global_frames(listed, detector.get("hierarchy") if isinstance(detector, dict) else None, where)
    panels, thickness = [], set()
    for i, (p, (origin, fast, slow)) in enumerate(zip(listed, placed)):
        name = p.get("name") or f"panel {i}"
        try:
            fpixels, spixels = (int(n) for n in p["image_size"])
            pixel_f, pixel_s = (float(x) for x in p["pixel_size"])
            if not math.isclose(pixel_f, pixel_s, rel_tol=1e-9):
                raise InputError(f"{where}: panel {name!r} has {pixel_f:g} x {pixel_s:g} mm pixels: nbsim's "
                                 "pixels are square")
            panel = PanelConfig(name=name, origin=[x / 1000.0 for x in from_dials_frame(origin)],
                                fast=from_dials_frame(fast), slow=from_dials_frame(slow),
                                pixel_size=pixel_f / 1000.0, fpixels=fpixels, spixels=spixels,
                                thickness=float(p.get("thickness", 0.0)) / 1000.0,
                                mu=float(p.get("mu", 0.0)) * 1000.0)
        except KeyError as exc:
            raise InputError(f"{where}: panel {name!r} has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: panel {name!r}: {exc}") from None
        panels.append(panel)
        thickness.add((panel.thickness, panel.mu))
    beam = wavelength = None
    beams = document.get("beam") or []
    if beams:
        b = beams[0]
        try:
            towards_source = np.asarray(b["direction"], dtype=float).reshape(3)
            beam = tuple(float(x) for x in from_dials_frame(-towards_source / np.linalg.norm(towards_source)))
            wavelength = float(b["wavelength"]) * 1e-10 if "wavelength" in b else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: the beam is unusable ({exc})") from None
    return DetectorFile(path=path, kind="DIALS experiment list", panels=tuple(panels), beam=beam,
                        wavelength=wavelength, sensor=any(t > 0 for t, _ in thickness))


def _global_frames(listed: list, hierarchy: dict | None, where: str) -> list[tuple[np.ndarray, ...]]:
    """(origin mm, fast, slow) of every panel in the laboratory (DIALS) frame: a panel's values
    are in its parent's frame, each group's in its own parent's (dxtbx's hierarchy)."""

    def frame(node: dict, parent):
        p_origin, p_axes = parent
        fast = np.asarray(node.get("fast_axis", (1.0, 0.0, 0.0)), dtype=float)
        slow = np.asarray(node.get("slow_axis", (0.0, 1.0, 0.0)), dtype=float)
        fast, slow = fast / np.linalg.norm(fast), slow / np.linalg.norm(slow)
        origin = p_origin + p_axes @ np.asarray(node.get("origin", (0.0, 0.0, 0.0)), dtype=float)
        fast, slow = p_axes @ fast, p_axes @ slow
        return origin, np.column_stack((fast, slow, np.cross(fast, slow)))

    lab = (np.zeros(3), np.eye(3))
    if hierarchy is None:
        frames = [frame(p, lab) for p in listed]
    else:
        frames: list = [None] * len(listed)

        def visit(node: dict, parent):
            here = frame(node, parent)
            for child in node.get("children", []):
                if "panel" in child:
                    k = child["panel"]
                    if not (isinstance(k, int) and 0 <= k < len(listed)) or frames[k] is not None:
                        raise InputError(f"{where}: the detector hierarchy names panel {k!r} wrongly or twice")
                    frames[k] = frame(listed[k], here)
                else:
                    visit(child, here)

        try:
            visit(hierarchy, lab)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{where}: the detector hierarchy is unusable ({exc})") from None
        if any(f is None for f in frames):
            raise InputError(f"{where}: the detector hierarchy leaves panel {frames.index(None)} out")
    return [(origin, axes[:, 0], axes[:, 1]) for origin, axes in frames]
