"""What a run needs in memory, checked before any of it is spent.

The render's working memory is bounded chunk by chunk (``kernel.memory_plan``); what grows
with the detector (the image, its pixel index, the output files built from it) and with the
set-up (mosaic domains, orientation tables) does not shrink with chunks.  ``check`` adds them
up from the configuration alone, before anything is allocated, and stops the run with one
line when they exceed ``--max-memory`` or the memory the machine has available.

The per-item figures are measured growths of peak memory, rounded up: of whole ``nbsim run``
commands between 1024x1024 and 3072x3072 detectors (``benchmarks/memory.py`` measures the
same way), and of building a model with 300 000 mosaic domains.
"""

from __future__ import annotations

import os
import re

from nbsim.errors import ResourceError, UsageError
from nbsim.model.config import RunConfig

#: an image with its pixel index, the float image and the SMV image built from it (measured 35.5)
BYTES_PER_PIXEL = 36
#: what the noise image and the PGM add (measured 54.2 for all four outputs)
BYTES_PER_PIXEL_NOISE_PGM = 19
#: one mosaic domain's draws: its rotation, axis and angle (measured 107)
BYTES_PER_DOMAIN = 110
#: one (phi step, domain) orientation table as the CPU loop takes it, with its copy while transposed
BYTES_PER_ORIENTATION = 2 * 72 * 2
#: the least a chunk may have to work in (a few pixels' worth of every path)
MIN_WORKING_MEMORY = 16 << 20


def available_memory() -> int | None:
    """Bytes the machine can give without swapping (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: str | int, option: str = "--max-memory") -> int:
    """Bytes from 4G, '512M', '1000000' or an int (K/M/G/T are powers of 1024); a usage error
    naming ``option`` otherwise."""
    m = _SIZE.match(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif m:
        size = int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()])
    else:
        raise UsageError(f"{option}: expected a size such as 4G, 512M or 1000000, got {value!r}")
    if size <= 0:
        raise UsageError(f"{option}: must be positive, got {value!r}")
    return size


def size_text(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def fixed_bytes(config: RunConfig) -> tuple[int, str]:
    """Memory that does not shrink with chunks, and its largest part in words for an error."""
    d, c, s = config.detector, config.crystal, config.sampling
    o = config.output
    pixels = d.fpixels * d.spixels
    per_pixel = BYTES_PER_PIXEL
    if o.noisefile is not None or o.pgmfile is not None:
        per_pixel += BYTES_PER_PIXEL_NOISE_PGM
    image = pixels * per_pixel
    domains = c.mosaic_domains if c.mosaic_spread > 0 else 1
    setup = domains * BYTES_PER_DOMAIN + s.phisteps * domains * BYTES_PER_ORIENTATION
    if image >= setup:
        why = f"a {d.fpixels}x{d.spixels} detector at about {per_pixel} bytes a pixel"
    else:
        why = f"{domains} mosaic domains x {s.phisteps} phi steps"
    return image + setup, why


def check(config: RunConfig, max_memory: int | None) -> int:
    """Stop now if the run cannot fit; else the working memory left for its chunks (bytes).

    :param max_memory: the user's bound on the whole run (``--max-memory``), or None: then
        the run must fit in the available memory, and chunks get ``pipeline.DEFAULT_MAX_MEMORY``
        of it at most.
    """
    from nbsim.engines.pipeline import DEFAULT_MAX_MEMORY

    fixed, why = fixed_bytes(config)
    if max_memory is not None:
        if fixed + MIN_WORKING_MEMORY > max_memory:
            raise ResourceError(
                f"--max-memory {size_text(max_memory)} is too small: this run needs about "
                f"{size_text(fixed + MIN_WORKING_MEMORY)} ({why}); raise --max-memory or make the run smaller")
        return max_memory - fixed
    available = available_memory()
    working = DEFAULT_MAX_MEMORY
    if available is not None and fixed + MIN_WORKING_MEMORY > available:
        raise ResourceError(
            f"this run needs about {size_text(fixed + MIN_WORKING_MEMORY)} of memory ({why}), "
            f"more than the {size_text(available)} available; make the run smaller")
    if available is not None:
        working = max(MIN_WORKING_MEMORY, min(working, available - fixed))
    return working
