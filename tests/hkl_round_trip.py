"""A render whose structure factors come from another file (--mtz, --structure) renders the
same image again from the HKL file it wrote with --write-hkl."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from nbsim_cli.app import cli


def assert_same_image_through_hkl(tmp_path, source: list[str], flags: list[str], cell) -> None:
    """Run ``source`` (its nbsim options) with ``--write-hkl``, then ``-hkl`` that file with
    ``-cell cell``, in ``tmp_path`` (the working directory): the float images must be equal."""
    runner = CliRunner()
    first = runner.invoke(cli, ["run", *source, "--write-hkl", "written.hkl", "-floatfile", "source.bin", *flags],
                          catch_exceptions=False)
    assert first.exit_code == 0, first.stderr
    again = runner.invoke(cli, ["run", "-hkl", "written.hkl", "-cell", *map(str, cell), "-floatfile", "hkl.bin",
                                *flags], catch_exceptions=False)
    assert again.exit_code == 0, again.stderr
    image = np.fromfile(tmp_path / "source.bin", dtype=np.float32)
    assert image.max() > 0
    np.testing.assert_array_equal(image, np.fromfile(tmp_path / "hkl.bin", dtype=np.float32))
