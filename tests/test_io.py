"""Tests of thermo.io: atomic files, config TOML, observables CSV, HDF5 trajectories,
checkpoints and TATi readers."""
import json
import os
import re
from typing import NamedTuple

import numpy as np
import pytest

from thermo.io import atomic, checkpoint, config, observables, tables, tati, trajectory


# --- atomic writes

def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic.atomic_write_text(path, "old\n")
    atomic.atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "f.bin"
    atomic.atomic_write_bytes(path, b"keep")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(path, "wb") as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_respects_umask(tmp_path):
    path = tmp_path / "f.txt"
    atomic.atomic_write_text(path, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


# --- TOML

def test_toml_round_trip(tmp_path):
    data = {"command": "sample", "steps": 10, "step_size": 0.1, "beta": float("inf"),
            "flag": True, "hidden": [8, 4], "name": 'quote " and \\ backslash',
            "options": {"a": 1.5e-300, "nested": {"b": "x"}}, "none": None}
    path = tmp_path / "c.toml"
    config.write_config(path, data)
    loaded = config.load_config(path)
    expected = dict(data)
    del expected["none"]
    assert loaded == expected


def test_json_config(tmp_path):
    path = tmp_path / "c.json"
    config.write_config(path, {"steps": 3})
    assert config.load_config(path) == {"steps": 3}


@pytest.mark.parametrize("content", ["steps = = 3\n", "[sample\n", "x = 'unterminated\n"])
def test_malformed_toml_is_one_line_error(tmp_path, content):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert "not valid TOML" in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load_config(tmp_path / "nope.toml")


# --- observables CSV

def _records(start, n):
    step = np.arange(start, start + n, dtype=np.int64) * 10
    return {"step": step, "energy": np.sin(step) * 1e3, "kinetic_energy": np.cos(step) / 7}


def test_observable_writer_round_trip_exact(tmp_path):
    path = tmp_path / "observables.csv"
    with observables.ObservableWriter(path, ["energy", "step", "kinetic_energy"]) as writer:
        writer.write(_records(1, 5))
        writer.write(_records(6, 3))
    columns, values = tables.read_table(path)
    assert columns == ["step", "energy", "kinetic_energy"]  # documented order
    expected = _records(1, 8)
    assert np.array_equal(values[:, 0], expected["step"])
    assert np.array_equal(values[:, 1], expected["energy"])  # bit for bit
    assert np.array_equal(values[:, 2], expected["kinetic_energy"])


def test_observable_writer_resume_truncates(tmp_path):
    path = tmp_path / "observables.csv"
    writer = observables.ObservableWriter(path, ["step", "energy", "kinetic_energy"])
    writer.write(_records(1, 4))
    size = writer.flush()
    writer.write(_records(5, 10))  # written after the "checkpoint"
    writer.close()
    resumed = observables.ObservableWriter(path, ["step", "energy", "kinetic_energy"],
                                           resume_size=size)
    resumed.write(_records(5, 2))
    resumed.close()
    _, values = tables.read_table(path)
    assert np.array_equal(values[:, 0], _records(1, 6)["step"])


def test_observable_writer_rejects_undocumented_and_short_file(tmp_path):
    with pytest.raises(ValueError, match="not documented"):
        observables.ObservableWriter(tmp_path / "a.csv", ["step", "mystery"])
    path = tmp_path / "b.csv"
    observables.ObservableWriter(path, ["step"]).close()
    with pytest.raises(ValueError, match="damaged"):
        observables.ObservableWriter(path, ["step"], resume_size=10_000)


def test_walker_column(tmp_path):
    path = tmp_path / "o.csv"
    with observables.ObservableWriter(path, ["walker", "step", "energy"]) as writer:
        writer.write({"step": np.array([1, 2]), "energy": np.array([0.5, 0.25])}, walker=3)
    columns, values = tables.read_table(path)
    assert columns[0] == "walker" and values[:, 0].tolist() == [3, 3]


def test_documentation_table_matches_columns():
    doc = observables.__doc__
    rows = re.findall(r"^(\w+)\s+(\S+)\s+(.+)$", doc.split("Columns\n-------")[1]
                      .split("Units:")[0], flags=re.MULTILINE)
    documented = {name: (unit, meaning.strip()) for name, unit, meaning in rows
                  if name != "column"}
    assert documented == observables.COLUMNS


def test_sampler_observables_are_documented():
    from thermo.samplers._solvers import COLUMNS as sampler_columns

    missing = set(sampler_columns) - set(observables.COLUMNS)
    assert not missing, f"document these observables in thermo.io.observables: {missing}"


# --- HDF5 trajectories

def test_trajectory_streaming_and_resume(tmp_path):
    path = tmp_path / "trajectory.h5"
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 5)) for n in (3, 4, 2)]
    steps = np.arange(1, 10) * 10
    with trajectory.TrajectoryWriter(path, 5) as writer:
        writer.append(blocks[0], steps[:3])
        assert writer.flush() == 3
        writer.append(blocks[1], steps[3:7])
    with trajectory.TrajectoryWriter(path, 5, resume_records=3) as writer:
        writer.append(blocks[2], steps[3:5])
    read_steps, theta = trajectory.read_trajectory(path)
    assert np.array_equal(read_steps, steps[:5])
    assert np.array_equal(theta, np.concatenate([blocks[0], blocks[2]]))
    assert trajectory.trajectory_length(path) == 5


def test_trajectory_walkers_layout_and_errors(tmp_path):
    path = tmp_path / "t.h5"
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    with trajectory.TrajectoryWriter(path, 4, dtype=np.float32, walkers=3) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.append(np.zeros((2, 4)), [1, 2])
        writer.append(data, [1, 2])
    _, one = trajectory.read_trajectory(path, walker=1)
    assert one.dtype == np.float32 and np.array_equal(one, data[:, 1])
    with pytest.raises(ValueError, match="records of shape"):
        trajectory.TrajectoryWriter(path, 5, walkers=3, resume_records=1)
    with pytest.raises(ValueError, match="checkpoint expects"):
        trajectory.TrajectoryWriter(path, 4, dtype=np.float32, walkers=3, resume_records=7)


def test_trajectory_chunks_are_whole_records(tmp_path):
    import h5py

    path = tmp_path / "t.h5"
    with trajectory.TrajectoryWriter(path, 7850, dtype=np.float64) as writer:
        writer.append(np.zeros((1, 7850)), [1])
    with h5py.File(path, "r") as handle:
        chunks = handle["theta"].chunks
        assert chunks[1] == 7850 and chunks[0] * 7850 * 8 <= 1 << 20
        assert handle["theta"].maxshape == (None, 7850)


# --- checkpoints

class _Inner(NamedTuple):
    values: np.ndarray
    count: int


class _State(NamedTuple):
    theta: np.ndarray
    step: int
    energy: float
    scalar: np.float32
    rng_state: dict
    inner: _Inner
    nothing: object


def test_checkpoint_round_trip_exact(tmp_path):
    rng = np.random.default_rng(42)
    rng.standard_normal(3)
    state = _State(rng.standard_normal(4), 17, 0.1 + 0.2, np.float32(1.5),
                   rng.bit_generator.state, _Inner(np.arange(3, dtype=np.int64), 2), None)
    path = tmp_path / "checkpoint.npz"
    checkpoint.save_checkpoint(path, {"state": state, "generator": rng, "list": [1, (2, 3)],
                                      "nan": float("nan")})
    loaded = checkpoint.load_checkpoint(path)
    restored = loaded["state"]
    assert type(restored) is _State and type(restored.inner) is _Inner
    assert np.array_equal(restored.theta, state.theta)
    assert restored.energy == state.energy and restored.step == 17
    assert type(restored.scalar) is np.float32
    assert restored.rng_state == state.rng_state
    assert loaded["generator"].standard_normal(5).tolist() == rng.standard_normal(5).tolist()
    assert loaded["list"] == [1, (2, 3)] and np.isnan(loaded["nan"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.load_checkpoint(bad)
    with pytest.raises(TypeError):
        checkpoint.save_checkpoint(tmp_path / "x.npz", {"f": lambda: 0})


# --- TATi files

TATI_RUN = """step,epoch,accuracy,loss,total_energy,kinetic_energy,scaled_momentum,scaled_gradient,virial,scaled_noise,average_kinetic_energy,average_virials
1,0,0.000,3.19376326e+00,3.19394651e+00,1.83254696e-04,1.91444350e-02,3.82888701e-02,6.81872123e-01,1.53666340e-01,1.83254696e-04,6.81872123e-01
2,1,0.000,3.18997455e+00,3.21010951e+00,2.01349624e-02,2.00673677e-01,3.84417843e-02,6.82760575e-01,2.63934837e-01,1.01591085e-02,6.82316349e-01
3,2,0.000,3.18433523e+00,3.20706443e+00,2.27291984e-02,2.13209748e-01,3.86616071e-02,6.83835313e-01,5.55041010e-01,1.43491385e-02,6.82822670e-01
"""

TATI_TRAJECTORY = """id,step,loss,weight0,weight1,bias0
0,1,3.19376326e+00,-1.36184533e-01,-3.63086183e-01,1.00000000e-01
0,2,3.18997455e+00,-1.35807710e-01,-3.62085050e-01,9.97958449e-02
1,1,3.18433523e+00,-1.35197666e-01,-3.60733885e-01,1.00518573e-01
1,2,3.18470311e+00,-1.37121484e-01,-3.59292977e-01,1.01773319e-01
"""


def test_read_tati_run_file(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text(TATI_RUN)
    run = tati.read_tati(path)
    assert run.theta is None and run.walker is None
    assert run.step.tolist() == [1, 2, 3]
    assert run.observables["kinetic_energy"][1] == 2.01349624e-02
    assert "epoch" in run.observables and run.walkers() == [0]


def test_read_tati_trajectory_with_walkers(tmp_path):
    path = tmp_path / "trajectory.csv"
    path.write_text(TATI_TRAJECTORY)
    t = tati.read_tati(path)
    assert t.parameter_names == ["weight0", "weight1", "bias0"]
    assert t.theta.shape == (4, 3) and t.walkers() == [0, 1]
    assert np.array_equal(t.theta[t.select(1)][:, 2], [1.00518573e-01, 1.01773319e-01])
    with pytest.raises(ValueError, match="no rows for walker"):
        t.select(5)


@pytest.mark.parametrize("content, message", [
    ("step,loss,weight0\n1,2.0,0.1\n2,3.0\n", "2 fields, header has 3"),
    ("step,loss\n1,abc\n", "non-numeric"),
    ("loss,weight0\n1.0,2.0\n", "no 'step' column"),
    ("", "empty"),
    ("step,loss\n", "no rows"),
])
def test_read_tati_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        tati.read_tati(path)


def test_outputs_open_with_pandas_and_h5py(tmp_path):
    pandas = pytest.importorskip("pandas")
    import h5py

    csv_path = tmp_path / "observables.csv"
    with observables.ObservableWriter(csv_path, ["step", "energy", "accuracy"]) as writer:
        writer.write({"step": np.array([10, 20]), "energy": np.array([1.0, np.inf]),
                      "accuracy": np.array([np.nan, 0.5])})
    frame = pandas.read_csv(csv_path)
    assert list(frame.columns) == ["step", "energy", "accuracy"]
    assert set(frame.columns) <= set(observables.COLUMNS)
    assert frame["step"].dtype.kind == "i" and np.isinf(frame["energy"][1])
    h5_path = tmp_path / "trajectory.h5"
    with trajectory.TrajectoryWriter(h5_path, 3) as writer:
        writer.append(np.ones((2, 3)), [10, 20])
    with h5py.File(h5_path, "r") as handle:
        assert handle.attrs["format"] == trajectory.FORMAT
        assert handle["theta"][:].shape == (2, 3)


def test_json_meta_is_plain(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save_checkpoint(path, {"steps_done": 5})
    with np.load(path) as archive:
        meta = json.loads(archive["__meta__"].tobytes())
    assert meta["format"] == checkpoint.FORMAT
