"""Just-in-time compilation as nbsim uses it: where compiled code is cached, numba's set-up,
and whether a call will compile.

Compiled code (numba's for ``nbsim.engines.numba_loop`` and ``nbsim.outputs.noise_loop``, torch.compile's for
``nbsim.engines.compiled``) is cached in the user's cache directory, not beside the installed
sources, so a read-only installation (a system site-packages, a container image) keeps its
compiled code too: ``$NBSIM_CACHE`` if set, else ``$XDG_CACHE_HOME/nbsim``, else
``~/.cache/nbsim``; numba's under ``numba/<digest of the sources>``, torch's under ``inductor/``.  A user's own
``NUMBA_CACHE_DIR`` or ``TORCHINDUCTOR_CACHE_DIR`` is left in charge.

Compiling the render loop takes about half a minute, once per installation (and again after
the loop's source or numba changes); :func:`will_compile` tells a caller beforehand, so the
command line can say why the first render is slow.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from types import ModuleType

#: environment variable naming nbsim's cache directory
CACHE_ENV = "NBSIM_CACHE"


def cache_dir() -> Path:
    """nbsim's cache directory (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nbsim"


@functools.cache
def numba() -> ModuleType | None:
    """numba, with its on-disk cache pointed at :func:`cache_dir`, or None where it is missing.

    Imported on first use: importing numba takes about 0.3 s, which renders too small for the
    compiled loops need not pay.  Must run before the compiled modules are imported (their
    cache location is fixed when their functions are decorated).
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; this keeps nbsim usable without it
        return None
    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = str(cache_dir() / "numba" / sources_digest())
    _full_width_vectors(numba)
    from nbsim.physics import dual_math

    dual_math.register_numba()
    # compiled forms are first-class functions, which numba calls experimental at every compile:
    # a remark about numba, not about the user's run
    warnings.filterwarnings("ignore", category=numba.NumbaExperimentalFeatureWarning)
    return numba


def sources_digest(package: Path = Path(__file__).parents[1]) -> str:
    """A digest of nbsim's sources, which names the directory of numba's cache.

    numba checks a cached function against its own file only, not against the functions it
    inlines from other modules (the shared formulas, the compiled forms): code cached before
    one of those changed would be loaded as if current.  Every version of the sources gets a
    directory of its own instead.
    """
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _full_width_vectors(numba) -> None:
    """Let numba's LLVM use 512-bit vectors where the CPU has AVX-512.

    LLVM prefers 256-bit vectors on these CPUs (for code that mixes vector and scalar work); the
    loop is compute bound and measured about 20% faster with the full width, in both precisions.
    Code compiled before this runs keeps its settings, and a user's NUMBA_CPU_NAME or
    NUMBA_CPU_FEATURES is left alone.
    """
    from numba.core.codegen import get_host_cpu_features

    if numba.config.CPU_FEATURES is None and numba.config.CPU_NAME is None:
        features = get_host_cpu_features()
        if "+avx512f" in features.split(","):
            numba.config.CPU_FEATURES = features + ",-prefer-256-bit"


def will_compile(dispatcher, args: tuple) -> bool:
    """Whether calling the numba ``dispatcher`` with ``args`` compiles: no overload for their types
    is loaded in this process, and none is in the on-disk cache.

    Reads numba's cache index the way numba does (by the same key); where that is not possible
    (another numba), says False, so a caller at worst omits a notice.
    """
    try:
        signature = tuple(dispatcher.typeof_pyval(a) for a in args)
        if signature in dispatcher.overloads:
            return False
        cache = dispatcher._cache
        key = cache._index_key(signature, dispatcher.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba internals: any change means "do not know"
        return False
