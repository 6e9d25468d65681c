"""Write the example input files `P1.hkl`, `A.mat` and `model.pdb` next to this script.

    .venv/bin/python examples/make_inputs.py [DIRECTORY]    (default: examples/)

Both describe one triclinic (P1) crystal, a = 70, b = 80, c = 90 Å, alpha = 75°, beta = 85°,
gamma = 95°, the cell of the README's example:

* `P1.hkl`: nanoBragg's text format, one reflection `h k l F` per line, every reflection to
  6 Å resolution. The amplitudes are computed, not random: F(hkl) = |sum_j f e^(2 pi i h.x_j)|
  for 40 equal atoms (f = 6, carbon-like) with a temperature factor of B = 20 Å^2, so they
  fall off with resolution like a real data set. The fractional positions x_j come from a
  Weyl sequence (multiples of irrational numbers, modulo 1), which spreads the atoms through
  the cell without a random-number generator, so the file is the same on every machine.
* `A.mat`: a MOSFLM orientation matrix as nanoBragg's `-mat` reads it. The first three lines
  hold the matrix [a* b* c*] by columns (rows x, y, z), in Å^-1 multiplied by the wavelength
  (1 Å here, so read it with `-lambda 1`). nanoBragg and nbsim ignore the rest of the file;
  it follows MOSFLM's layout: a line of missetting angles, the U matrix, the cell, and a
  second line of missetting angles. The orientation is the cell's standard setting (the one
  `-cell` gives: a* along x, b* in the xy plane) rotated about x, y and z by 10, 20 and 30
  degrees, so `-mat A.mat -lambda 1` describes the crystal that
  `-cell 70 80 90 75 85 95 -misset 10 20 30` asks for. (Not exactly the one it gets: for a
  triclinic cell, nanoBragg's standard setting has a c* slightly too long along z, so after
  it forces the lengths and volume it prints "Unit Cell: 70 80 90 75.0391 85.0136 95.0081";
  nbsim reproduces that. With this matrix it prints the cell above.)

* `model.pdb`: an atomic model for `--structure` (written with gemmi): 400 atoms, carbon,
  nitrogen and oxygen in the proportions of a protein plus four selenium atoms (for
  `--anomalous`), in space group P 21 21 21 with a = 40, b = 50, c = 60 Å, B factors of 20 Å^2
  (selenium 15), at fractional positions from the same Weyl sequence. It is no real protein:
  the amplitudes fall off and vary like a real one's, which is what a simulation needs.

Run again, the script rewrites the three files byte for byte (tests/test_docs.py checks this).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

CELL = (70.0, 80.0, 90.0, 75.0, 85.0, 95.0)  # a, b, c in Å; alpha, beta, gamma in degrees
MISSET_DEGREES = (10.0, 20.0, 30.0)  # about lab x, then y, then z
WAVELENGTH = 1.0  # Å; MOSFLM scales the matrix by the wavelength it was written for
RESOLUTION = 6.0  # Å, the highest resolution listed in P1.hkl
ATOMS = 40
ATOM_SCATTERING = 6.0  # electrons, a carbon atom at low angle
B_FACTOR = 20.0  # Å^2

MODEL_CELL = (40.0, 50.0, 60.0, 90.0, 90.0, 90.0)
MODEL_SPACE_GROUP = "P 21 21 21"
MODEL_ELEMENTS = "CCCNOCCCNCOCCNCCOCCN"  # about 63% C, 17% N, 20% O, as in proteins (hydrogens left out)
MODEL_ATOMS = 400
SELENIUM_EVERY = 100  # one atom in a hundred is a selenium (a selenomethionine's)

HERE = Path(__file__).resolve().parent


def reciprocal_standard_setting(cell):
    """Rows a*, b*, c* (Å^-1) in the setting nanoBragg gives a -cell: a* along x, b* in xy."""
    a, b, c = cell[:3]
    alpha, beta, gamma = (math.radians(angle) for angle in cell[3:])
    cos_a, cos_b, cos_g = math.cos(alpha), math.cos(beta), math.cos(gamma)
    volume = a * b * c * math.sqrt(1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g)
    a_star = b * c * math.sin(alpha) / volume
    b_star = c * a * math.sin(beta) / volume
    c_star = a * b * math.sin(gamma) / volume
    # angles between the reciprocal axes
    cos_gamma_star = (cos_a * cos_b - cos_g) / (math.sin(alpha) * math.sin(beta))
    cos_beta_star = (cos_g * cos_a - cos_b) / (math.sin(gamma) * math.sin(alpha))
    cos_alpha_star = (cos_b * cos_g - cos_a) / (math.sin(beta) * math.sin(gamma))
    sin_gamma_star = math.sqrt(1 - cos_gamma_star**2)
    c_star_x = c_star * cos_beta_star
    c_star_y = c_star * (cos_alpha_star - cos_beta_star * cos_gamma_star) / sin_gamma_star
    c_star_z = math.sqrt(c_star**2 - c_star_x**2 - c_star_y**2)
    return np.array([
        [a_star, 0.0, 0.0],
        [b_star * cos_gamma_star, b_star * sin_gamma_star, 0.0],
        [c_star_x, c_star_y, c_star_z],
    ])


def rotation_xyz(degrees):
    """Rz·Ry·Rx: rotate about lab x, then y, then z (the order of nanoBragg's -misset)."""
    rx, ry, rz = (math.radians(angle) for angle in degrees)
    cx, sx, cy, sy, cz, sz = (f(angle) for angle in (rx, ry, rz) for f in (math.cos, math.sin))
    about_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def atom_positions(count):
    """Fractional coordinates spread through the cell, reproducibly (a Weyl sequence)."""
    steps = np.array([math.sqrt(2), math.sqrt(3), math.sqrt(5)]) % 1.0
    return (np.arange(1, count + 1)[:, None] * steps[None, :]) % 1.0


def structure_factors(reciprocal, resolution):
    """(n, 3) Miller indices within the resolution and their amplitudes, h slowest."""
    # the largest index along each axis: 1/d >= |h a*| needs |h| <= 1 / (d * distance
    # between reciprocal planes), which is bounded by the real cell length over d
    real = np.linalg.inv(reciprocal).T  # rows a, b, c in Å
    limits = [math.ceil(np.linalg.norm(axis) / resolution) for axis in real]
    ranges = [np.arange(-limit, limit + 1) for limit in limits]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    s = np.linalg.norm(hkl @ reciprocal, axis=1)  # 1/d
    hkl = hkl[(s > 0) & (s <= 1.0 / resolution)]
    s = np.linalg.norm(hkl @ reciprocal, axis=1)
    phases = 2 * math.pi * hkl @ atom_positions(ATOMS).T  # (reflections, atoms)
    sum_over_atoms = np.abs(np.exp(1j * phases).sum(axis=1))
    temperature = np.exp(-B_FACTOR * s**2 / 4)  # exp(-B sin²θ/λ²), sinθ/λ = s/2
    return hkl, ATOM_SCATTERING * temperature * sum_over_atoms


def write_hkl(path, hkl, amplitudes):
    records = zip(hkl.tolist(), amplitudes.tolist())
    lines = [f"{h:4d} {k:4d} {l:4d} {f:9.2f}\n" for (h, k, l), f in records]
    path.write_text("".join(lines))


def write_mat(path, reciprocal, rotation):
    # MOSFLM writes the wavelength-scaled matrix with a*, b*, c* as its columns
    matrix = (rotation @ reciprocal.T) * WAVELENGTH
    zero_misset = "       0.000       0.000       0.000\n"
    lines = [" ".join(f"{value:12.8f}" for value in row) + "\n" for row in matrix]
    lines.append(zero_misset)
    lines += [" ".join(f"{value:11.7f}" for value in row) + "\n" for row in rotation]
    lines.append(" ".join(f"{value:11.4f}" for value in CELL) + "\n")
    lines.append(zero_misset)
    path.write_text("".join(lines))


def write_model(path):
    import gemmi  # the structure writer; only this file needs it

    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(*MODEL_CELL)
    st.spacegroup_hm = MODEL_SPACE_GROUP
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    for i, fractional in enumerate(atom_positions(MODEL_ATOMS)):
        if i % 10 == 0:  # ten atoms to a residue, as a reader expects residues
            residue = gemmi.Residue()
            residue.name, residue.seqid = "UNL", gemmi.SeqId(i // 10 + 1, " ")
        selenium = i % SELENIUM_EVERY == SELENIUM_EVERY - 1
        atom = gemmi.Atom()
        atom.element = gemmi.Element("Se" if selenium else MODEL_ELEMENTS[i % len(MODEL_ELEMENTS)])
        atom.name = atom.element.name.upper()
        atom.pos = st.cell.orthogonalize(gemmi.Fractional(*fractional))
        atom.occ, atom.b_iso = 1.0, 15.0 if selenium else B_FACTOR
        residue.add_atom(atom)
        if i % 10 == 9:
            chain.add_residue(residue)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    path.write_text(st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True)))


def main(directory=HERE):
    directory = Path(directory)
    reciprocal = reciprocal_standard_setting(CELL)
    rotation = rotation_xyz(MISSET_DEGREES)
    hkl, amplitudes = structure_factors(reciprocal, RESOLUTION)
    write_hkl(directory / "P1.hkl", hkl, amplitudes)
    write_mat(directory / "A.mat", reciprocal, rotation)
    write_model(directory / "model.pdb")
    print(f"wrote {directory / 'P1.hkl'} ({len(hkl)} reflections), {directory / 'A.mat'} and {directory / 'model.pdb'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
