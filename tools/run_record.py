"""What a generated report records about the run that made it, and how reports are written.

Shared by ``tools/parity_report.py`` and the scripts in ``benchmarks/``: each report is a
JSON record plus a Markdown table, written side by side.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def environment(device: str = "cpu") -> dict:
    """Versions, machine, device, git revision and date of this run."""
    import numba
    import numpy
    import torch

    import nbsim

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "nbsim": nbsim.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "numba": numba.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor(),
        "git_revision": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_report(out: str | Path, stem: str, record, lines: list[str]) -> Path:
    """Write ``<stem>.json`` (the record) and ``<stem>.md`` (the lines) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return out / stem
