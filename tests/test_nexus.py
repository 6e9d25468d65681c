"""NeXus (NXmx) images: read back with nxmx, the reader DIALS uses, the geometry placed by its
transformation chains must be the experiment's, in nanoBragg's frame; h5py checks the storage."""

from __future__ import annotations

import math

import attrs
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter for reading)
import numpy as np
import nxmx
import pytest

from nbsim.io import expt, nexus
from nbsim.model.geometry import from_mcstas_frame, in_mcstas_frame

#: McStas (x, y, z) from nanoBragg's (x, y, z), written out here independently of the writer
NANOBRAGG_TO_MCSTAS = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
TO_NANOBRAGG = NANOBRAGG_TO_MCSTAS.T
MOSFLM_BEAM = (1.0, 0.0, 0.0)
SHAPE = (7, 5)  # slow, fast


def rotation(axis, angle):
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def panel(origin, fast, slow, pixel_size=172e-6, thickness=450e-6, name=""):
    return expt.PanelGeometry(origin=list(origin), fast=list(fast), slow=list(slow), pixel_size=pixel_size,
                              fpixels=SHAPE[1], spixels=SHAPE[0], thickness=thickness, mu=0.0, name=name)


def experiment(panels, *, beam=MOSFLM_BEAM, spindle=(0.0, 0.0, 1.0), phi0=0.0, osc=0.0):
    return expt.Experiment(beam=beam, wavelength=1.3e-10, polarization_axis=(0.0, 0.0, 1.0), kahn=0.0,
                           panels=panels, real_space=np.eye(3).tolist(), spindle=spindle, phi0=phi0, osc=osc,
                           exposure=0.25, image="image.nxs")


def one_panel():
    return [panel((0.1, 0.0125, -0.0113), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0), pixel_size=0.1e-3, thickness=0.0)]


def tilted_panels():
    """Four panels of a detector turned about three axes, one with fast along slow's usual way."""
    R = rotation((0.3, -0.5, 0.8), math.radians(17.0))
    centre, axes = np.array([0.12, 0.0, 0.0]), [((0, 0, 1), (0, -1, 0)), ((0, 1, 0), (0, 0, 1)),
                                                ((0, 0, -1), (0, 1, 0)), ((0, -1, 0), (0, 0, -1))]
    corners = [(0.0, 0.01, -0.02), (0.003, -0.011, 0.004), (-0.002, 0.02, 0.015), (0.001, -0.004, -0.018)]
    return [panel(R @ (centre + corner), R @ np.array(f, float), R @ np.array(s, float),
                  pixel_size=(0.1e-3, 0.172e-3, 0.075e-3, 0.2e-3)[k], name=f"q{k}")
            for k, (corner, (f, s)) in enumerate(zip(corners, axes))]


def counts_for(e, frames, high=60000, seed=0):
    return np.random.default_rng(seed).integers(0, high, size=(frames, len(e.panels), *SHAPE))


def read(tmp_path, data: bytes):
    path = tmp_path / "image.nxs"
    path.write_bytes(data)
    return h5py.File(path, "r")


def lab_geometry(module):
    """Pixel (0, 0)'s corner, the fast and slow steps of one pixel (m, nanoBragg's frame)."""
    def placed(direction):
        whole = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(direction))[0]
        above = (nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(direction.depends_on))[0]
                 if direction.depends_on else np.eye(4))
        offset = direction.offset.to("mm").magnitude if direction.offset is not None else np.zeros(3)
        corner = (above @ np.append(offset, 1.0))[:3]  # the axis at 0
        next_corner = (whole @ np.array([0.0, 0.0, 0.0, 1.0]))[:3]  # the axis at its value, one pixel
        return TO_NANOBRAGG @ corner / 1000, TO_NANOBRAGG @ (next_corner - corner) / 1000

    corner, fast = placed(module.fast_pixel_direction)
    slow_corner, slow = placed(module.slow_pixel_direction)
    assert np.allclose(slow_corner, corner, rtol=0, atol=1e-15)
    return corner, fast, slow


def close(a, b):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-9 * np.abs(b).max())


@pytest.mark.parametrize("panels", [one_panel, tilted_panels])
def test_nxmx_reads_back_the_experiments_geometry_scan_and_counts(tmp_path, panels):
    e = experiment(panels(), spindle=(0.1, 0.2, 0.97), phi0=math.radians(10.0), osc=math.radians(0.25))
    counts = counts_for(e, frames=3)
    with read(tmp_path, nexus.encode(e, counts, saturation=60000, created="2024-05-06T07:08:09Z")) as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.definition == "NXmx"
        assert entry.start_time.isoformat() == "2024-05-06T07:08:09+00:00"
        (instrument,) = entry.instruments
        assert instrument.beams[0].incident_wavelength.to("angstrom").magnitude == pytest.approx(1.3, rel=1e-12)
        (detector,) = instrument.detectors
        assert detector.sensor_material == "Si"
        assert detector.sensor_thickness.to("m").magnitude == pytest.approx(e.panels[0].thickness, abs=1e-15)
        assert detector.saturation_value == 60000
        assert detector.count_time.to("s").magnitude == pytest.approx(0.25)
        assert detector.depends_on.path == nexus.DETECTOR_AXIS
        assert len(detector.modules) == len(e.panels)
        for k, (module, p) in enumerate(zip(detector.modules, e.panels)):
            corner, fast, slow = lab_geometry(module)
            assert close(corner, p.origin), (k, corner, p.origin)
            assert close(fast, np.asarray(p.fast) * p.pixel_size), k
            assert close(slow, np.asarray(p.slow) * p.pixel_size), k
            # readers that place a module by its offsets in the detector's frame (DIALS' detector
            # hierarchy) agree: that frame is the laboratory's
            chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
            assert np.array_equal(nxmx.get_cumulative_transformation(chain)[0], np.eye(4))
            block = tuple(slice(int(o), int(o + n)) for o, n in zip(module.data_origin, module.data_size))
            assert int(module.data_size[-1]) == SHAPE[1] and int(module.data_size[-2]) == SHAPE[0]
            frames = f["/entry/data/data"][(slice(None), *block)].reshape(3, *SHAPE)
            assert np.array_equal(frames, counts[:, k])
        data = f[f"/entry/data/{entry.data[0].signal}"]
        assert data.shape == ((3, *SHAPE) if len(e.panels) == 1 else counts.shape)
        assert data.dtype == np.uint16

        (sample,) = entry.samples
        (axis,) = nxmx.get_dependency_chain(sample.depends_on)
        assert axis.transformation_type == "rotation"
        assert close(TO_NANOBRAGG @ np.asarray(axis.vector), e.spindle)
        assert close(axis[()].to("deg").magnitude, [10.0, 10.25, 10.5])
        assert close(axis.end[()].to("deg").magnitude, [10.25, 10.5, 10.75])
        assert axis.increment_set.to("deg").magnitude == pytest.approx(0.25)


def test_mcstas_mapping_takes_mosflm_beam_to_plus_z_and_its_spindle_to_minus_x():
    assert list(in_mcstas_frame(MOSFLM_BEAM)) == [0.0, 0.0, 1.0]
    assert list(in_mcstas_frame((0, 0, 1))) == [-1.0, 0.0, 0.0]
    for v in np.random.default_rng(1).normal(size=(5, 3)):
        assert np.allclose(in_mcstas_frame(v), NANOBRAGG_TO_MCSTAS @ v, rtol=0, atol=1e-15)
        assert np.allclose(from_mcstas_frame(in_mcstas_frame(v)), v, rtol=0, atol=0)


def test_a_still_has_the_one_angle_and_a_negative_oscillation_turns_the_axis(tmp_path):
    still = experiment(one_panel(), phi0=math.radians(30.0))
    with read(tmp_path, nexus.encode(still, counts_for(still, frames=1))) as f:
        (axis,) = nxmx.get_dependency_chain(nxmx.NXmx(f).entries[0].samples[0].depends_on)
        assert close(axis[()].to("deg").magnitude, [30.0])
        assert close(axis.end[()].to("deg").magnitude, [30.0])
    backwards = experiment(one_panel(), phi0=math.radians(5.0), osc=math.radians(-0.5))
    with read(tmp_path, nexus.encode(backwards, counts_for(backwards, frames=2))) as f:
        (axis,) = nxmx.get_dependency_chain(nxmx.NXmx(f).entries[0].samples[0].depends_on)
        assert close(TO_NANOBRAGG @ np.asarray(axis.vector), [0.0, 0.0, -1.0])
        assert close(axis[()].to("deg").magnitude, [-5.0, -4.5])  # -phi about -spindle: the same rotations


def test_storage_is_bitshuffle_lz4_by_frame_and_panel_with_the_photons_beside(tmp_path):
    e = experiment(tilted_panels())
    counts = counts_for(e, frames=2, high=100000)
    photons = np.random.default_rng(2).random(counts.shape, dtype=np.float32) * 1000
    with read(tmp_path, nexus.encode(e, counts, photons=photons)) as f:
        data, ideal = f["/entry/data/data"], f["/entry/data/photons"]
        assert data.dtype == np.int32 and np.array_equal(data[()], counts)  # beyond 16 bits
        assert ideal.dtype == np.float32 and np.array_equal(ideal[()], photons)
        assert ideal.attrs["units"] == "photons"
        assert list(f["/entry/data"].attrs["auxiliary_signals"]) == ["photons"]
        for dataset in (data, ideal):
            assert dataset.chunks == (1, 1, *SHAPE)
            filter_id, _, options, _ = dataset.id.get_create_plist().get_filter(0)
            assert filter_id == 32008 and options[-1] == 2  # bitshuffle, then LZ4
    single = experiment(one_panel())
    with read(tmp_path, nexus.encode(single, counts_for(single, frames=2))) as f:
        assert f["/entry/data/data"].chunks == (1, *SHAPE)
        assert "photons" not in f["/entry/data"] and "auxiliary_signals" not in f["/entry/data"].attrs


def test_an_experiment_whose_beam_is_not_mcstas_z_is_turned_rigidly_with_it(tmp_path):
    """An XDS-convention beam (nanoBragg +z): the file's beam is +z, and every angle between
    beam, spindle and pixels is the experiment's."""
    turn = rotation((0.0, 1.0, 0.0), math.radians(-90.0))  # nanoBragg +x onto +z: the XDS frame
    panels = [attrs.evolve(p, origin=list(turn @ p.origin), fast=list(turn @ p.fast), slow=list(turn @ p.slow))
              for p in tilted_panels()]
    e = experiment(panels, beam=(0.0, 0.0, 1.0), spindle=(1.0, 0.0, 0.0), osc=math.radians(0.5))
    with read(tmp_path, nexus.encode(e, counts_for(e, frames=1))) as f:
        (entry,) = nxmx.NXmx(f).entries
        (axis,) = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        spindle = np.asarray(axis.vector)  # McStas, where the beam is +z
        assert spindle @ (0, 0, 1) == pytest.approx(np.dot(e.spindle, e.beam), abs=1e-12)
        for module, p in zip(entry.instruments[0].detectors[0].modules, e.panels):
            corner, fast, _ = (NANOBRAGG_TO_MCSTAS @ v for v in lab_geometry(module))
            for file_vector, vector in ((corner, p.origin), (fast, np.asarray(p.fast) * p.pixel_size)):
                assert file_vector[2] == pytest.approx(np.dot(vector, e.beam), abs=1e-12)
                assert file_vector @ spindle == pytest.approx(np.dot(vector, e.spindle), abs=1e-12)
                assert np.linalg.norm(file_vector) == pytest.approx(np.linalg.norm(vector), rel=1e-12)


def test_what_nxmx_cannot_hold_is_refused():
    panels = tilted_panels()
    mixed = experiment([*panels[:3], attrs.evolve(panels[3], thickness=1e-3)])
    with pytest.raises(ValueError, match="sensor thickness"):
        nexus.encode(mixed, counts_for(mixed, frames=1))
    e = experiment(panels)
    for wrong in (counts_for(e, frames=1)[:, :3], counts_for(e, frames=1)[0], counts_for(e, frames=1) * 1.0):
        with pytest.raises(ValueError, match="images of shape"):
            nexus.encode(e, wrong)


def test_nbsim_run_writes_every_panel_and_the_experiment_list_agrees(tmp_path, monkeypatch):
    """--nexus of a four-panel run: nxmx reads the panels --export-expt describes (DIALS' frame is
    McStas' with x and z reversed), the int image's counts and, with --nexus-float, the float image."""
    import json

    from click.testing import CliRunner

    from nbsim import config_from_argv
    from nbsim.model.panels import split_detector
    from nbsim_cli.app import cli

    monkeypatch.chdir(tmp_path)
    argv = ["-cell", "61", "72", "83", "88", "97", "101", "-default_F", "10", "-N", "3", "-lambda", "1.2",
            "-oversample", "1", "-nopgm", "-noprogress", "-phi", "20", "-osc", "1"]
    whole = config_from_argv([*argv, "-distance", "110", "-detpixels", "40", "-detector_rotz", "5"])
    split = split_detector(whole, 2, 2)
    panels = [{"name": p.name, "origin_mm": [1000 * x for x in p.origin], "fast": list(p.fast), "slow": list(p.slow),
               "pixel_mm": 1000 * p.pixel_size, "size": [p.fpixels, p.spixels]} for p in split.detector.panels]
    (tmp_path / "tiles.json").write_text(json.dumps({"nbsim_panels": 1, "panels": panels}))
    result = CliRunner().invoke(cli, ["run", *argv, "--detector", "tiles.json", "-intfile", "int.img",
                                      "-floatfile", "float.bin", "--nexus", "run.nxs", "--nexus-float",
                                      "--export-expt", "run.expt"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    listed = json.loads((tmp_path / "run.expt").read_text())["detector"][0]["panels"]
    dials_to_mcstas = np.diag([-1.0, 1.0, -1.0])
    int_image = np.fromfile("int.img", dtype=np.uint16)[-4 * 20 * 20:].reshape(4, 20, 20)
    with h5py.File("run.nxs", "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        modules = entry.instruments[0].detectors[0].modules
        assert len(modules) == 4
        for module, p in zip(modules, listed):
            corner, fast, slow = (NANOBRAGG_TO_MCSTAS @ v for v in lab_geometry(module))
            assert close(corner * 1000, dials_to_mcstas @ p["origin"])
            assert close(fast / np.linalg.norm(fast), dials_to_mcstas @ p["fast_axis"])
            assert close(slow / np.linalg.norm(slow), dials_to_mcstas @ p["slow_axis"])
        assert np.array_equal(f["/entry/data/data"][0], int_image)
        float_image = np.fromfile("float.bin", dtype=np.float32).reshape(4, 20, 20)
        assert np.array_equal(f["/entry/data/photons"][0], float_image)
    alone = CliRunner().invoke(cli, ["run", *argv, "-distance", "100", "--nexus-float"], catch_exceptions=False)
    assert alone.exit_code == 2 and "--nexus-float chooses what --nexus holds" in alone.stderr
