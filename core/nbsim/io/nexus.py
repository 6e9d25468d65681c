"""NeXus/HDF5 images in the NXmx application definition (written with h5py), the layout DIALS reads.

NeXus places everything in the McStas frame: +z along the beam, +y up; it is DIALS' frame with x
and z negated, so nanoBragg's (x, y, z) is McStas' (-z, y, x) (:func:`nbsim.model.geometry.in_mcstas_frame`, a proper
rotation: MOSFLM's beam +x becomes +z and its spindle +z becomes -x, and rotation senses carry
over).  Each panel is one NXdetector_module whose pixel directions carry its placement; the
goniometer is the one rotation axis, the spindle (``specs/outputs.md``).
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from nbsim.io import expt
from nbsim.model.geometry import in_mcstas_frame

#: the root of every module's chain: a zero translation, so that the detector frame is the laboratory's
DETECTOR_AXIS = "/entry/instrument/detector/transformations/detector_z"
SCAN_AXIS = "/entry/sample/transformations/phi"


def _mcstas(v) -> np.ndarray:
    """A vector of nanoBragg's frame in the NeXus (McStas) frame, as an array."""
    return np.array(in_mcstas_frame(list(v)), dtype=float)


def onto_beam_axis(beam) -> np.ndarray:
    """The smallest rotation taking the unit vector ``beam`` (McStas frame) onto +z, where NXmx
    has the beam: the identity for nanoBragg's MOSFLM-like beams, a rigid turn of the whole
    experiment (which changes no image) for the others."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(beam, z)
    sin, cos = np.linalg.norm(axis), float(np.dot(beam, z))
    if sin < 1e-15:
        return np.eye(3) if cos > 0 else np.diag([-1.0, 1.0, -1.0])  # along -z: half a turn about y
    k = axis / sin
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + sin * K + (1.0 - cos) * (K @ K)


def _strings(group, **fields) -> None:
    for name, value in fields.items():
        group[name] = value


def _group(parent, name: str, nx_class: str):
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _axis(group, name: str, value, *, kind: str, vector, units: str, depends_on: str, offset=None):
    axis = group.create_dataset(name, data=value)
    axis.attrs.update(transformation_type=kind, vector=np.asarray(vector, dtype=float), units=units,
                      depends_on=depends_on)
    if offset is not None:
        axis.attrs.update(offset=np.asarray(offset, dtype=float), offset_units=units)
    return axis


def encode(experiment: expt.Experiment, counts: np.ndarray, *, photons: np.ndarray | None = None,
           saturation: int = 65535, created: str | None = None) -> bytes:
    """An NXmx file of the images ``counts`` (frames, panels, slow, fast), frame i covering
    phi0 + i osc .. phi0 + (i + 1) osc; ``photons``, the float images, go to ``/entry/data/photons``.
    Returned as the file's bytes.  A beam that is not nanoBragg's +x (McStas +z) turns the
    whole experiment with it (:func:`onto_beam_axis`).  ValueError: what NXmx cannot express."""
    import hdf5plugin  # imported here: only runs that write NeXus pay for it

    e, counts = experiment, np.asarray(counts)
    planes = {(p.spixels, p.fpixels) for p in e.panels}
    if (not np.issubdtype(counts.dtype, np.integer) or counts.ndim != 4 or counts.shape[0] < 1
            or counts.shape[1] != len(e.panels) or planes != {counts.shape[2:]}):
        raise ValueError(f"NeXus: {counts.dtype} images of shape {counts.shape} for {len(e.panels)} panels of "
                         f"{sorted(planes)} (slow, fast) pixels")
    dtype = count_type(counts)
    layout = _layout(e, counts.shape[0])
    stored = dict(chunks=(1, *layout[1:]) if len(layout) == 3 else (1, 1, *layout[2:]),  # a frame of a panel
                  **hdf5plugin.Bitshuffle(cname="lz4"))

    def write_data(data) -> None:
        data.create_dataset("data", data=counts.reshape(layout).astype(dtype), **stored).attrs["units"] = "counts"
        if photons is not None:  # beside the counts: DIALS reads the NXdata's signal only
            data.attrs["auxiliary_signals"] = ["photons"]
            ideal = np.asarray(photons, dtype=np.float32).reshape(layout)
            data.create_dataset("photons", data=ideal, **stored).attrs["units"] = "photons"

    return _document(e, counts.shape[0], write_data, saturation=saturation, created=created)


def encode_master(experiment: expt.Experiment, shards: Sequence[tuple[str, int]], dtype, *,
                  saturation: int = 65535, created: str | None = None) -> bytes:
    """An NXmx file whose data are the frames of the NXmx files ``shards`` ((path relative to
    this file, frames), in order), joined by an HDF5 virtual dataset: one file for a reader,
    written once the shards are."""
    import h5py
    from h5py import h5d, h5p, h5s, h5t

    frames = sum(n for _, n in shards)
    layout = _layout(experiment, frames)

    def write_data(data) -> None:
        # made with HDF5's own calls, for what h5py's VirtualLayout does not offer: no creation
        # time in the file, whose bytes then depend on the dataset alone
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        dcpl.set_fill_value(np.zeros(1, dtype=dtype))
        start = 0
        for path, n in shards:
            frames_here = h5s.create_simple(layout)
            frames_here.select_hyperslab((start,) + (0,) * (len(layout) - 1), (n, *layout[1:]))
            dcpl.set_virtual(frames_here, path.encode(), b"/entry/data/data", h5s.create_simple((n, *layout[1:])))
            start += n
        dataset = h5d.create(data.id, b"data", h5t.py_create(np.dtype(dtype)), h5s.create_simple(layout), dcpl=dcpl)
        h5py.Dataset(dataset).attrs["units"] = "counts"

    return _document(experiment, frames, write_data, saturation=saturation, created=created)


def count_type(counts: np.ndarray):
    """uint16 when every count fits (nanoBragg's images), else int32."""
    if counts.min() >= 0 and counts.max() <= 65535:
        return np.uint16
    if np.iinfo(np.int32).min <= counts.min() and counts.max() <= np.iinfo(np.int32).max:
        return np.int32
    raise ValueError("NeXus: counts beyond the 32-bit integers")


def _layout(e: expt.Experiment, frames: int) -> tuple[int, ...]:
    """NXmx's 2-D detector, (frames, slow, fast), for one panel; else one block per panel."""
    p = e.panels[0]
    return (frames, p.spixels, p.fpixels) if len(e.panels) == 1 else (frames, len(e.panels), p.spixels, p.fpixels)


def _document(e: expt.Experiment, frames: int, write_data: Callable, *, saturation: int,
              created: str | None) -> bytes:
    """The NXmx file of ``frames`` images of ``e``; ``write_data(group)`` puts the images in /entry/data."""
    import h5py

    turn = onto_beam_axis(_mcstas(e.beam) / np.linalg.norm(e.beam))

    def lab(v) -> np.ndarray:
        return turn @ _mcstas(v)

    if len({p.thickness for p in e.panels}) > 1:
        raise ValueError("NeXus: NXmx gives one sensor thickness per detector; the panels differ")
    created = created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    n_panels, spixels, fpixels = len(e.panels), e.panels[0].spixels, e.panels[0].fpixels
    one_panel = n_panels == 1
    # HDF5 knows open files by name, even in memory: a name of its own for each file
    with h5py.File(f"nbsim-{uuid.uuid4().hex}.nxs", "w", driver="core", backing_store=False) as f:
        f.attrs.update(NX_class="NXroot", default="entry")
        entry = _group(f, "entry", "NXentry")
        entry.attrs["default"] = "data"
        _strings(entry, definition="NXmx", start_time=created, end_time=created, end_time_estimated=created)
        data = _group(entry, "data", "NXdata")
        data.attrs["signal"] = "data"
        write_data(data)
        _strings(_group(entry, "source", "NXsource"), name="nbsim simulation")

        instrument = _group(entry, "instrument", "NXinstrument")
        _strings(instrument, name="nbsim")
        beam_group = _group(instrument, "beam", "NXbeam")
        beam_group.create_dataset("incident_wavelength", data=e.wavelength * 1e10).attrs["units"] = "angstrom"
        detector = _group(instrument, "detector", "NXdetector")
        _strings(detector, description="nbsim simulated detector", type="pixel", sensor_material="Si",
                 depends_on=DETECTOR_AXIS)
        detector.create_dataset("sensor_thickness", data=float(e.panels[0].thickness)).attrs["units"] = "m"
        detector.create_dataset("saturation_value", data=np.int64(saturation))
        for name in ("count_time", "frame_time"):  # no read-out time: a frame is its exposure
            detector.create_dataset(name, data=float(e.exposure)).attrs["units"] = "s"
        _axis(_group(detector, "transformations", "NXtransformations"), "detector_z", 0.0, kind="translation",
              vector=(0.0, 0.0, 1.0), units="m", depends_on=".")
        width = len(str(n_panels - 1))  # module names sort in panel order (readers list them by name)
        for k, p in enumerate(e.panels):
            module = _group(detector, f"module_{k:0{width}d}", "NXdetector_module")
            module["data_origin"] = np.array([0, 0] if one_panel else [k, 0, 0], dtype=np.int64)
            module["data_size"] = np.array([spixels, fpixels] if one_panel else [1, spixels, fpixels], dtype=np.int64)
            # a pixel direction's value is the pixel size; its offset is pixel (0, 0)'s outer corner
            for name, direction in (("fast_pixel_direction", p.fast), ("slow_pixel_direction", p.slow)):
                _axis(module, name, float(p.pixel_size), kind="translation", vector=lab(direction),
                      units="m", depends_on=DETECTOR_AXIS, offset=lab(p.origin))

        sample = _group(entry, "sample", "NXsample")
        _strings(sample, name="simulated crystal", depends_on=SCAN_AXIS)
        # readers want increasing angles: a negative oscillation is the reverse axis turning forwards
        sense = -1.0 if e.osc < 0 else 1.0
        start, step = sense * math.degrees(e.phi0), sense * math.degrees(e.osc)
        angles = start + step * np.arange(frames)
        goniometer = _group(sample, "transformations", "NXtransformations")
        _axis(goniometer, "phi", angles, kind="rotation", vector=sense * lab(e.spindle), units="deg",
              depends_on=".")
        goniometer.create_dataset("phi_end", data=angles + step).attrs["units"] = "deg"
        goniometer.create_dataset("phi_increment_set", data=step).attrs["units"] = "deg"
        f.flush()
        return f.id.get_file_image()
