"""The nanoBragg flag table and scan: whole-token names, values, the reference's assignments."""

from __future__ import annotations

import math

import pytest

from nbsim.errors import UsageError
from nbsim.setup import config_from_argv, parse_argv
from nbsim.setup.flags import BY_NAME, FLAGS
from nbsim.setup.state import RTD

BASE = ["-cell", "100", "-default_F", "1"]


def test_every_usage_text_spelling_is_a_flag():
    usage = ("-mat -hkl -misset -cell -default_F -distance -detsize -detpixels -pixel -img -mask -detector_absorb "
             "-detector_thick -detector_thicksteps -Xbeam -Ybeam -mosflm -xds -ORGX -ORGY -twotheta -N -xtalsize "
             "-square_xtal -round_xtal -gauss_xtal -tophat_spots -oversample -oversample_thick -oversample_polar "
             "-oversample_omega -lambda -energy -mosaic -mosaic_domains -dispersion -dispsteps -hdivrange "
             "-vdivrange -hdivstep -vdivstep -square_div -phi -osc -phisteps -water -floatfile -intfile -scale "
             "-adc -polar -noisefile -pgmfile -pgmscale -nopgm -roi -printout -seed -mosaic_seed -misset_seed "
             "-fluence -flux -beamsize -exposure -nonoise -noprogress -nopolar -nointerpolate -interpolate "
             "-point_pixel -curved_det -fdet_vector -sdet_vector -odet_vector -beam_vector -polar_vector "
             "-spindle_axis -pix0_vector -detsize_f -detsize_s -detpixels_x -detpixels_y -Na -Nb -Nc")
    missing = [f for f in usage.split() if f not in BY_NAME]
    assert missing == []


def test_prefix_families_are_listed():
    for name in ("-mosaic_dom", "-mosaic_domains", "-mosaicity", "-mosaic_spread", "-detector_abs",
                 "-detector_absorb", "-pix0_vector_mm", "-sample_height", "-xtal_heigh", "-heigh", "-molec"):
        assert name in BY_NAME


def test_no_substring_matching():
    with pytest.raises(UsageError, match="-wavelengthx"):
        parse_argv(BASE + ["-wavelengthx", "1"])
    with pytest.raises(UsageError, match="-xdsX"):
        parse_argv(BASE + ["-xdsX"])


def test_misset_seed_never_sets_misset_angles():
    st = parse_argv(BASE + ["-misset", "random", "-misset_seed", "777", "-N", "5"])
    assert st.misset == "random" and st.misset_seed == -777


def test_twotheta_axis_never_sets_twotheta_or_pivot():
    st = parse_argv(BASE + ["-twotheta", "8", "-twotheta_axis", "0", "1", "0"])
    assert st.twotheta == pytest.approx(8 / RTD) and st.twotheta_axis == (0.0, 1.0, 0.0)
    st = parse_argv(BASE + ["-distance", "90", "-twotheta_axis", "0", "1", "0"])
    assert st.twotheta == 0.0 and st.pivot == "beam" and st.convention == "custom"


def test_negative_numbers_are_values():
    st = parse_argv(BASE + ["-beam_vector", "-1", "0", "-0.0", "-Xbeam", "-5"])
    assert st.beam_vector == (-1.0, 0.0, -0.0) and st.Xbeam == -0.005


def test_cell_takes_one_to_six_values():
    st = parse_argv(["-cell", "50", "-N", "3", "-default_F", "1"])
    assert st.cell[:3] == [50.0, 0.0, 0.0] and st.Na == 3
    cfg = config_from_argv(["-cell", "50", "-default_F", "1", "-detpixels", "8"])
    assert cfg.crystal.cell[:3] == (50.0, 50.0, 50.0)
    assert cfg.crystal.cell[3] == pytest.approx(math.pi / 2)


def test_later_flags_overwrite_and_toggles_follow_order():
    st = parse_argv(BASE + ["-N", "5", "-Na", "3"])
    assert (st.Na, st.Nb, st.Nc) == (3, 5, 5)
    st = parse_argv(BASE + ["-Na", "3", "-N", "5"])
    assert (st.Na, st.Nb, st.Nc) == (5, 5, 5)
    assert parse_argv(BASE + ["-nopolar", "-polar", "0.5"]).nopolar is False
    assert parse_argv(BASE + ["-nonoise", "-noisefile", "n.img"]).calculate_noise is True


def test_detector_abs_inf_zeroes_thickness_and_is_reported():
    st = parse_argv(BASE + ["-detector_thick", "100", "-detector_abs", "inf"])
    assert st.detector_thick == 0.0 and st.detector_mu == 0.0
    assert st.cancelled and st.cancelled[0][0] == "-detector_thick"


def test_conversions_match_the_reference():
    st = parse_argv(BASE + ["-distance", "123.4", "-detector_thick", "450", "-water", "10", "-dmin", "2",
                            "-energy", "2000", "-dispersion", "2", "-hdivrange", "0.5", "-mosaic", "0.3"])
    assert st.distance == 123.4 / 1000.0
    assert st.detector_thick == 450 * 1e-6
    assert st.water_size == 10 / 1e6
    assert st.dmin == 2 * 1e-10
    assert st.lambda0 == (12398.42 / 2000) / 1.0e10
    assert st.dispersion == 2 / 100.0 and st.hdivrange == 0.5 / 1000.0 and st.mosaic_spread == 0.3 / RTD


def test_convention_forces_pivot():
    assert config_from_argv(BASE + ["-close_distance", "90", "-detpixels", "8"]).detector.pivot == "beam"
    assert config_from_argv(BASE + ["-xds", "-distance", "90", "-detpixels", "8"]).detector.pivot == "sample"
    custom = config_from_argv(BASE + ["-spindle_axis", "0", "0", "1", "-pivot", "sample", "-detpixels", "8"])
    assert custom.detector.convention == "custom" and custom.detector.pivot == "sample"


def test_topics_cover_every_flag():
    assert all(f.help and f.topic for f in FLAGS)
