; A detector of four 256 x 256 panels of 75 um pixels around the direct beam, 100 mm from the
; sample, with 20-pixel gaps between them; the panels lie one after another in the data array
; (slow-scan rows 0-255 for q0, 256-511 for q1, ...). CrystFEL's frame: +z along the beam, +y up.
; Read by `nbsim run --detector examples/quadrants.geom` (docs/from-pdb-to-dials.md).
res = 13333.333333333334
clen = 0.100
coffset = 0.0
photon_energy = 12660
adu_per_photon = 1
data = /entry/data/data
dim0 = %
dim1 = ss
dim2 = fs

q0/min_fs = 0
q0/max_fs = 255
q0/min_ss = 0
q0/max_ss = 255
q0/fs = +1.0x +0.0y
q0/ss = +0.0x -1.0y
q0/corner_x = -266.0
q0/corner_y = 266.0

q1/min_fs = 0
q1/max_fs = 255
q1/min_ss = 256
q1/max_ss = 511
q1/fs = +1.0x +0.0y
q1/ss = +0.0x -1.0y
q1/corner_x = 10.0
q1/corner_y = 266.0

q2/min_fs = 0
q2/max_fs = 255
q2/min_ss = 512
q2/max_ss = 767
q2/fs = +1.0x +0.0y
q2/ss = +0.0x -1.0y
q2/corner_x = -266.0
q2/corner_y = -10.0

q3/min_fs = 0
q3/max_fs = 255
q3/min_ss = 768
q3/max_ss = 1023
q3/fs = +1.0x +0.0y
q3/ss = +0.0x -1.0y
q3/corner_x = 10.0
q3/corner_y = -10.0

rigid_group_detector = q0,q1,q2,q3
rigid_group_collection_detector = detector
