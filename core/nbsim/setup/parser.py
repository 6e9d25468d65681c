"""Turn a nanoBragg argument list into the scan state.

Tokens are read left to right; each must be the whole name of a flag in
:mod:`nbsim.setup.flags` followed by exactly the values that flag takes (negative numbers
are values).  As in the reference program, ``-img`` and ``-mask`` headers are read before
every other flag (mask first, then img), so that any flag on the command line overrides
them, and later flags overwrite earlier ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from nbsim.errors import UsageError
from nbsim.io import smv
from nbsim.setup import flags as F
from nbsim.setup.state import RTD, ScanState

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))


def _number(flag: str, token: str | None) -> float:
    if token is None:
        raise UsageError(f"{flag}: missing value (expected a number)")
    if not _is_number(token):
        raise UsageError(f"{flag}: expected a number, got {token!r}")
    value = float(token)
    if not math.isfinite(value):
        raise UsageError(f"{flag}: value out of range, got {token!r}")
    return value


def _integer(flag: str, token: str | None) -> int:
    if token is None:
        raise UsageError(f"{flag}: missing value (expected an integer)")
    if not _INTEGER.match(token):
        raise UsageError(f"{flag}: expected an integer, got {token!r}")
    return int(token)


class _Tokens:
    def __init__(self, argv: Sequence[str]):
        self.argv = list(argv)
        self.i = 0

    def peek(self) -> str | None:
        return self.argv[self.i] if self.i < len(self.argv) else None

    def take(self) -> str | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok


def _read_values(flag: F.Flag, name: str, toks: _Tokens):
    shape = flag.shape
    if shape == F.NONE:
        return None
    if shape == F.NUMBER:
        return _number(name, toks.take())
    if shape == F.INTEGER:
        return _integer(name, toks.take())
    if shape == F.TEXT:
        tok = toks.take()
        if tok is None or tok in F.BY_NAME:
            raise UsageError(f"{name}: missing value (expected a file name)")
        return tok
    if shape == F.VECTOR:
        return tuple(_number(name, toks.take()) for _ in range(3))
    if shape == F.ROI:
        return tuple(_integer(name, toks.take()) for _ in range(4))
    if shape == F.PIXEL:
        return tuple(_integer(name, toks.take()) for _ in range(2))
    if shape == F.CELL:
        values = []
        while len(values) < 6:
            tok = toks.peek()
            if tok is None or tok.startswith("-") or not _is_number(tok):
                break
            values.append(float(toks.take()))
        if not values:
            raise UsageError(f"{name}: missing value (expected 1 to 6 numbers: a b c alpha beta gamma)")
        return values
    if shape == F.MISSET:
        tok = toks.peek()
        if tok is not None and tok.lower() in ("random", "rand"):
            toks.take()
            return "random"
        return tuple(_number(name, toks.take()) for _ in range(3))
    if shape == F.PIVOT:
        tok = toks.take()
        if tok is None:
            raise UsageError(f"{name}: missing value (expected 'beam' or 'sample')")
        if tok.lower() not in ("beam", "sample"):
            raise UsageError(f"{name}: expected 'beam' or 'sample', got {tok!r}")
        return tok.lower()
    if shape == F.ABSORPTION:
        tok = toks.take()
        if tok is None:
            raise UsageError(f"{name}: missing value (expected a depth in µm or 'inf')")
        if tok.lower() in ("inf", "infinity", "+inf"):
            return math.inf
        return _number(name, tok)
    raise AssertionError(shape)


def scan(argv: Sequence[str]) -> list[tuple[F.Flag, str, int, object]]:
    """Split argv into (flag, spelling, position, values) in command-line order."""
    toks = _Tokens(argv)
    events = []
    while toks.peek() is not None:
        pos = toks.i
        tok = toks.take()
        flag = F.BY_NAME.get(tok)
        if flag is None:
            if tok.startswith("--"):
                raise UsageError(f"unknown option {tok} (no installed plugin provides it; see 'nbsim run --help')")
            if tok.startswith("-") and not _is_number(tok):
                raise UsageError(f"unknown flag {tok} (see 'nbsim run --help')")
            raise UsageError(f"unexpected argument {tok!r}: values must follow the flag they belong to")
        events.append((flag, tok, pos, _read_values(flag, tok, toks)))
    return events


def _apply_header(state: ScanState, frame: smv.SMVFrame, *, is_mask: bool) -> None:
    """Initialise the detector from an SMV header, as the reference does for -mask and -img."""
    h = frame.header
    state.fpixels, state.spixels = frame.width, frame.height
    if "PIXEL_SIZE" in h:
        state.pixel_size = h["PIXEL_SIZE"] / 1000.0
    state.detsize_f = state.pixel_size * state.fpixels
    state.detsize_s = state.pixel_size * state.spixels
    if "DISTANCE" in h:
        state.distance = h["DISTANCE"] / 1000.0
    if "CLOSE_DISTANCE" in h:
        state.close_distance = h["CLOSE_DISTANCE"] / 1000.0
        state.header_values["CLOSE_DISTANCE"] = h["CLOSE_DISTANCE"]
    if "WAVELENGTH" in h:
        state.lambda0 = h["WAVELENGTH"] / 1e10
    if "BEAM_CENTER_X" in h:
        state.Xbeam = h["BEAM_CENTER_X"] / 1000.0
    if "BEAM_CENTER_Y" in h:
        # the reference flips the mask's Y beam centre (but not the image's)
        state.Ybeam = (state.detsize_s - h["BEAM_CENTER_Y"] / 1000.0) if is_mask else h["BEAM_CENTER_Y"] / 1000.0
    orgx = h.get("XDS_ORGX", h.get("ORGX"))
    orgy = h.get("XDS_ORGY", h.get("ORGY"))
    if orgx is not None:
        state.ORGX = orgx
    if orgy is not None:
        state.ORGY = orgy
    if "PHI" in h:
        state.phi0 = h["PHI"] / RTD
    if "OSC_RANGE" in h:
        state.osc = h["OSC_RANGE"] / RTD
    if "TWOTHETA" in h:
        state.header_twotheta = h["TWOTHETA"]


def parse_argv(argv: Sequence[str]) -> ScanState:
    """Return the reference program's variables after it has scanned ``argv``.

    :raises UsageError: an unknown flag, a missing or malformed value.
    :raises InputError: an ``-img`` or ``-mask`` file that is missing or not an SMV frame.
    """
    events = scan(argv)
    state = ScanState()
    for flag, _, pos, _ in events:
        state.typed.setdefault(flag.name, []).append(pos)
    img = [v for f, _, _, v in events if f.name == "-img"]
    mask = [v for f, _, _, v in events if f.name == "-mask"]
    if mask:
        state.maskfile = mask[-1]
        frame = smv.read(state.maskfile, flag="-mask", with_pixels=True)
        _apply_header(state, frame, is_mask=True)
        state.mask = frame.pixels
    if img:
        state.imgfile = img[-1]
        frame = smv.read(state.imgfile, flag="-img", with_pixels=False)
        _apply_header(state, frame, is_mask=False)
    for flag, _, _, values in events:
        flag.apply(state, values)
    return state
