"""The reference program's crystal-shape constants (``specs/physics.md`` section 3), in one
place for the tensor forms (:mod:`.lattice`) and the compiled forms (:mod:`.lattice_forms`)."""

#: normalises the round shape's sinc3 so that its peak equals the square shape's
ROUND_NORM = 0.723601254558268
#: the Gaussian shape's width: exp(-rad^2 fudge / GAUSS_WIDTH)
GAUSS_WIDTH = 0.63
#: the tophat shape's squared radius: Na Nb Nc inside rad^2 fudge < TOPHAT_RADIUS2
TOPHAT_RADIUS2 = 0.3969
