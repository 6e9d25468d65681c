"""File formats: HKL, Fdump, matrices, source files, SMV headers."""

from __future__ import annotations

import numpy as np
import pytest

from golden import GOLDEN
from nbsim.errors import InputError
from nbsim.io import fdump, hkl, matrix, smv, sourcefile


def test_hkl_with_phase_column_reads_first_four(tmp_path):
    sf = hkl.read(str(GOLDEN / "inputs" / "phase.hkl"), 0.0)
    records = np.loadtxt(GOLDEN / "inputs" / "phase.hkl")
    assert sf.count == len(records)
    h, k, l, F = records[5, :4]
    assert sf.grid[int(h) - sf.h_min, int(k) - sf.k_min, int(l) - sf.l_min] == F


def test_hkl_grid_has_spare_planes_and_default(tmp_path):
    p = tmp_path / "t.hkl"
    p.write_text("0 0 0 100\n1 0 0 50\n0 1 0 25\n1.0 1 0 5\n0 0 0 7\n")
    sf = hkl.read(str(p), 3.0)
    assert sf.grid.shape == (3, 3, 2)
    assert sf.grid[0, 0, 0] == 7  # a repeated index keeps the last record
    assert sf.grid[1, 1, 0] == 5 and sf.grid[2, 0, 0] == 0.0 and sf.count == 5


def test_hkl_errors(tmp_path):
    p = tmp_path / "bad.hkl"
    p.write_text("0 0 0.5 10\n")
    with pytest.raises(InputError, match="bad.hkl:1"):
        hkl.read(str(p), 0.0)
    p.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="no reflections"):
        hkl.read(str(p), 0.0)


def test_fdump_round_trip_including_whitespace_first_byte(tmp_path):
    p = tmp_path / "t.hkl"
    # 50.00000000000023 has 0x20 as its first byte in memory: the reference misreads it
    p.write_text("0 0 0 50.00000000000023\n1 0 0 50\n")
    sf = hkl.read(str(p), 0.0)
    assert np.float64(50.00000000000023).tobytes()[0] == 0x20
    path = tmp_path / "Fdump.bin"
    path.write_bytes(fdump.encode(sf))
    back = fdump.read(str(path))
    assert np.array_equal(back.grid, sf.grid) and back.bounds == sf.bounds
    assert path.read_bytes().startswith(b"0 1 0 0 0 0\n\f")


def test_matrix_reads_columns():
    a, b, c = matrix.read(str(GOLDEN / "inputs" / "ortho.mat"))
    assert a == (0.01910673, 0.00591040, 0.0) and c == (0.0, 0.0, 0.01428571)


def test_source_file_crlf_comments_and_defaults(tmp_path):
    p = tmp_path / "s.txt"
    p.write_bytes(b"# x y z w lambda\r\n-10 0 0 1 6.2e-10\r\n-10,0.002;0.001\r\n\r\n-10 0 0")
    table = sourcefile.read(str(p))
    assert table.shape == (3, 5)
    assert np.isnan(table[1, 3]) and table[1, 1] == 0.002 and np.isnan(table[2, 4])


def test_smv_header_grows_beyond_512(tmp_path):
    items = [("SIZE1", "3"), ("SIZE2", "2")] + [(f"KEY{i}", "x" * 20) for i in range(30)]
    data = smv.encode(items, np.zeros((2, 3), dtype=np.uint16))
    assert b"HEADER_BYTES=1024;" in data[:40]
    path = tmp_path / "big.img"
    path.write_bytes(data)
    frame = smv.read(str(path), flag="-img", with_pixels=True)
    assert frame.header_bytes == 1024 and frame.pixels.shape == (2, 3)


def test_smv_big_endian_mask(tmp_path):
    frame = smv.read(str(GOLDEN / "inputs" / "mask.img"), flag="-mask", with_pixels=True)
    raw = (GOLDEN / "inputs" / "mask.img").read_bytes()
    swapped = raw.replace(b"little_endian", b"big_endian___")[:512] + np.frombuffer(
        raw[512:], dtype="<u2").astype(">u2").tobytes()
    path = tmp_path / "be.img"
    path.write_bytes(swapped)
    assert np.array_equal(smv.read(str(path), flag="-mask", with_pixels=True).pixels, frame.pixels)
