"""CrystFEL geometry files (``.geom``): the panels of a detector.

Lines are ``key = value`` or ``panel/key = value``, ``;`` starts a comment; a key without a
panel sets the default of every panel defined after it. A panel's pixel (fs, ss), counted
from its (min_fs, min_ss), lies at corner + fs * fs_vector + ss * ss_vector, in pixels of
1/res metres across, and at clen + coffset along the beam. CrystFEL's laboratory frame has
+z along the beam and +y up, which is the McStas frame (:func:`nbsim.model.geometry.from_mcstas_frame`
maps it). ``bad_`` regions, rigid groups and the data layout (``data``, ``dim``, ``mask``...)
do not describe where pixels are and are not read; a clen or photon energy read from the
data files (an HDF5 path) cannot be used here.
"""

from __future__ import annotations

import re

import numpy as np

from nbsim.errors import InputError
from nbsim.io.detector_file import FLAG, DetectorFile
from nbsim.model.config import PanelConfig
from nbsim.model.geometry import from_mcstas_frame
from nbsim.model.spectra import photon_wavelength

#: per-panel keys that place pixels; all of them must be known for every panel
PLACEMENT = ("min_fs", "max_fs", "min_ss", "max_ss", "fs", "ss", "corner_x", "corner_y", "res", "clen")
_TERM = re.compile(r"\s*([+-]?)\s*(\d*\.?\d*(?:[eE][+-]?\d+)?)\s*([xyz])")


def read_detector(path: str, text: str) -> DetectorFile:
    defaults: dict[str, tuple[str, int]] = {"coffset": ("0", 0)}
    panels: dict[str, dict[str, tuple[str, int]]] = {}
    energy = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        where = f"{FLAG}: {path} line {number}"
        if "=" not in line:
            raise InputError(f"{where}: expected 'key = value', got {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        name, _, field = key.rpartition("/")
        if not field or not value:
            raise InputError(f"{where}: expected 'key = value', got {line!r}")
        if name.startswith(("bad", "rigid_group")) or field.startswith(("rigid_group", "bad")):
            continue
        if not name:
            if field == "photon_energy":
                energy = _maybe_number(value)
            defaults[field] = (value, number)
        else:
            panel = panels.setdefault(name, dict(defaults))
            panel[field] = (value, number)
    if not panels:
        raise InputError(f"{FLAG}: {path}: no panels (lines 'name/min_fs = ...')")
    placed = tuple(_panel(path, name, fields) for name, fields in panels.items())
    return DetectorFile(path=path, kind="CrystFEL geometry", panels=placed,
                        beam=tuple(float(x) for x in from_mcstas_frame((0.0, 0.0, 1.0))),
                        wavelength=None if not energy else photon_wavelength(energy))


def _panel(path: str, name: str, fields: dict[str, tuple[str, int]]) -> PanelConfig:
    missing = [k for k in PLACEMENT if k not in fields]
    if missing:
        raise InputError(f"{FLAG}: {path}: panel {name!r} has no {', '.join(missing)}")

    def number(key: str) -> float:
        value, line = fields[key]
        x = _maybe_number(value)
        if x is None:
            raise InputError(f"{FLAG}: {path} line {line}: {name}/{key} = {value!r} is not a number"
                             + (" (values read from the data files cannot be used)" if "/" in value else ""))
        return x

    def index(key: str) -> int:
        x = number(key)
        if x != int(x):
            raise InputError(f"{FLAG}: {path} line {fields[key][1]}: {name}/{key} must be a pixel index")
        return int(x)

    fpixels = index("max_fs") - index("min_fs") + 1  # both inclusive
    spixels = index("max_ss") - index("min_ss") + 1
    if fpixels < 1 or spixels < 1:
        line = fields["max_fs" if fpixels < 1 else "max_ss"][1]
        raise InputError(f"{FLAG}: {path} line {line}: panel {name!r} has no pixels ({fpixels}x{spixels})")
    res = number("res")
    if not res > 0:
        raise InputError(f"{FLAG}: {path} line {fields['res'][1]}: {name}/res must be positive")
    fs, ss = (_vector(path, name, k, *fields[k]) for k in ("fs", "ss"))
    lengths = np.linalg.norm(fs), np.linalg.norm(ss)
    if max(abs(n - 1.0) for n in lengths) > 1e-3:
        raise InputError(f"{FLAG}: {path} line {fields['fs'][1]}: panel {name!r} has fs/ss vectors of length "
                         f"{lengths[0]:g}/{lengths[1]:g} pixels: nbsim's pixels are square, one 1/res across")
    corner = np.array([number("corner_x") / res, number("corner_y") / res, number("clen") + number("coffset")])
    return PanelConfig(name=name, origin=from_mcstas_frame(corner), fast=from_mcstas_frame(fs),
                       slow=from_mcstas_frame(ss), pixel_size=1.0 / res, fpixels=fpixels, spixels=spixels)


def _vector(path: str, name: str, key: str, value: str, line: int) -> np.ndarray:
    """``"+0.002x -0.999y"`` as (x, y, z)."""
    v = np.zeros(3)
    rest = value.replace(" ", "")
    for sign, size, axis in _TERM.findall(value):
        v["xyz".index(axis)] += (-1.0 if sign == "-" else 1.0) * (float(size) if size else 1.0)
        rest = rest.replace(f"{sign}{size}{axis}", "", 1)
    if rest or not v.any():
        raise InputError(f"{FLAG}: {path} line {line}: {name}/{key} = {value!r} is not a vector such as '+1.0x -0.0y'")
    return v


def _maybe_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
