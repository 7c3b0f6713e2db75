"""Walkers in rounds of pure tasks: determinism, merge order, executors agree."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from thermo.cli.main import main
from thermo.walkers.executors import InProcessExecutor, make_executor
from thermo.walkers.rounds import (HillTable, WalkerEnsemble, WalkerProblem, add_hills,
                                   bias_snapshot, build_bias, run_round, walker_seed)

METAD = ["metad", "--potential", "double-well", "--cv", "coordinates:0", "--cv-range=-2,2",
         "--walkers", "2", "--round-steps", "100", "--steps", "600", "--pace", "10",
         "--hill-height", "0.3", "--hill-width", "0.2", "--step-size", "0.05",
         "--record-every", "10", "--quiet", "--no-figures", "--no-check"]
COMPARED = ("HILLS", "free_energy.csv", "observables.csv", "theta.npy")


def _problem(threads=1, pace=10):
    metad = {"directions": np.array([[1.0, 0.0]]), "centre": np.zeros(2), "names": ["x"],
             "height": 0.3, "sigma": [0.2], "pace": pace, "temperature": 1.0,
             "bias_factor": None, "grid": [(-3.2, 3.2, 129)], "walls": [(-2.0, 2.0)],
             "wall_kappa": 100.0}
    return WalkerProblem(factory="thermo.cli.sampling:build_potential",
                         arguments={"potential": "double-well", "barrier": 1.0, "dimension": 2},
                         key="double-well-test", method="baoab",
                         sampler={"step_size": 0.05, "beta": 1.0, "friction": 5.0,
                                  "record_every": 10, "record_trajectory": True},
                         threads=threads, metad=metad)


def _start(walker, walkers):
    return ("fresh", np.array([-1.0 + walker, 0.0]), walker_seed(7, walker, walkers))


def test_run_round_is_pure():
    problem = _problem()
    shared = HillTable.empty(1)
    first = run_round(problem, 0, _start(0, 2), 50, shared)
    again = run_round(problem, 0, _start(0, 2), 50, shared)  # a retried task
    assert np.array_equal(first.state.theta, again.state.theta)
    assert np.array_equal(first.hills.centres, again.hills.centres)
    assert len(first.hills) == 5 and len(shared) == 0  # input untouched
    assert np.array_equal(first.trajectory, again.trajectory)


def test_shared_hills_as_table_or_snapshot_give_the_same_round():
    import warnings

    problem = _problem()
    first = run_round(problem, 0, _start(0, 2), 60, HillTable.empty(1))
    table = first.hills
    holder = build_bias(problem.metad, len(table))
    add_hills(holder, table)
    by_table = run_round(problem, 1, _start(1, 2), 60, table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spurious "dropped hills" warning
        by_snapshot = run_round(problem, 1, _start(1, 2), 60, bias_snapshot(holder))
    assert np.array_equal(by_table.state.theta, by_snapshot.state.theta)
    assert np.array_equal(by_table.trajectory, by_snapshot.trajectory)
    assert len(by_snapshot.hills) == 6
    for name in ("centres", "sigmas", "heights", "steps", "walkers"):
        assert np.array_equal(getattr(by_table.hills, name), getattr(by_snapshot.hills, name))


def test_threads_are_set_and_restored():
    import numba

    before = numba.get_num_threads()
    run_round(_problem(threads=1), 0, _start(0, 1), 10, HillTable.empty(1))
    assert numba.get_num_threads() == before


def test_merge_in_walker_order():
    problem = _problem()
    ensemble = WalkerEnsemble(problem, 2, 100, InProcessExecutor(),
                              [_start(0, 2), _start(1, 2)])
    state = ensemble.initial_state()
    state, results, new = ensemble.round(state, 40)
    assert new.walkers.tolist() == [0] * 4 + [1] * 4
    assert np.array_equal(new.centres[:4], results[0].hills.centres)
    state2, _, new2 = ensemble.round(state, 40)
    merged = HillTable.from_dict(state2["hills"])
    assert len(merged) == 16 and merged.walkers.tolist()[8:12] == [0] * 4


def test_single_walker_rounds_equal_one_sample_call():
    import thermo
    from thermo.cli.sampling import build_potential

    problem = _problem()
    ensemble = WalkerEnsemble(problem, 1, 30, InProcessExecutor(), [_start(0, 1)])
    state = ensemble.initial_state()
    for n in (30, 30, 40):  # three rounds with exchanges of the (own) hills
        state, _, _ = ensemble.round(state, n)
    bias = build_bias(problem.metad, 20)
    potential = build_potential(problem.arguments)
    run = thermo.sample(potential, "baoab", theta0=np.array([-1.0, 0.0]), seed=7,
                        n_steps=100, bias=bias, **problem.sampler)
    assert np.array_equal(run.state.theta, state["walkers"][0].theta)
    merged = HillTable.from_dict(state["hills"])
    assert np.array_equal(bias.hills["centres"], merged.centres)
    rebuilt = build_bias(problem.metad, len(merged) + 1)
    add_hills(rebuilt, merged)
    assert np.array_equal(rebuilt.free_energy()[1], bias.free_energy()[1])


def _metad_run(directory, executor, extra=()):
    status = main(METAD + ["--executor", executor, "--workers", "2",
                           "--output", str(directory), *extra])
    assert status == 0
    return {name: (directory / name).read_bytes() for name in COMPARED}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("walkers") / "inprocess"
    return _metad_run(directory, "inprocess")


def test_reference_is_multiwalker(reference):
    lines = reference["HILLS"].decode().splitlines()
    assert lines[0].startswith("#! FIELDS time x") or lines[0].startswith("#! FIELDS time theta0")
    assert len([line for line in lines if not line.startswith("#")]) == 2 * 600 // 10
    assert reference["observables.csv"].decode().splitlines()[0].startswith("walker,step")


def test_hills_file_restarts_metadynamics(reference, tmp_path):
    from thermo.bias.metadynamics import Metadynamics
    from thermo.io.tables import read_table

    (tmp_path / "HILLS").write_bytes(reference["HILLS"])
    (tmp_path / "F.csv").write_bytes(reference["free_energy.csv"])
    problem = _problem()
    metad = dict(problem.metad, names=["theta0"])
    bias = build_bias(metad, 200)
    bias.load_hills(str(tmp_path / "HILLS"))
    assert isinstance(bias, Metadynamics) and bias.n_hills == 120
    _, values = read_table(tmp_path / "F.csv")
    assert values.shape[1] == 2 and np.all(np.isfinite(values[:, 1]))


def test_process_pool_identical(reference, tmp_path):
    assert _metad_run(tmp_path / "process", "process") == reference


def test_dask_identical(reference, tmp_path):
    pytest.importorskip("distributed")
    assert _metad_run(tmp_path / "dask", "dask") == reference


def test_mpi_identical(reference, tmp_path):
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found")
    directory = tmp_path / "mpi"
    command = [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py.futures", "-m", "thermo.cli",
               *METAD, "--executor", "mpi", "--output", str(directory)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if result.returncode != 0 and "MPI" in result.stderr and "init" in result.stderr.lower():
        pytest.skip(f"MPI cannot start here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    assert {name: (directory / name).read_bytes() for name in COMPARED} == reference


def test_unknown_executor():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("ray")


def test_analyse_multiwalker_run(reference, tmp_path_factory, capsys):
    directory = tmp_path_factory.getbasetemp() / "walkers0" / "inprocess"
    if not directory.exists():
        directory = next(tmp_path_factory.getbasetemp().glob("walkers*/inprocess"))
    out = tmp_path_factory.mktemp("analysis")
    status = main(["analyse", "--input", str(directory), "--analyses",
                   "averages,iat,covariance", "--output", str(out), "--overwrite",
                   "--no-figures", "--quiet"])
    assert status == 0
    text = (out / "averages.csv").read_text()
    assert text.splitlines()[0].startswith("observable,mean") and "energy," in text
    with np.load(out / "pca.npz") as pca:
        assert pca["eigenvectors"].shape[0] == 2


def test_single_walker_metad_independent_of_chunking(tmp_path):
    one = [a for a in METAD if a not in ("--walkers", "2")]
    outputs = []
    for every in ("1", "50"):
        directory = tmp_path / f"every{every}"
        assert main(one + ["--checkpoint-every", every, "--output", str(directory)]) == 0
        outputs.append({name: (directory / name).read_bytes() for name in COMPARED})
    assert outputs[0] == outputs[1]
    assert outputs[0]["HILLS"].count(b"\n") == 3 + 600 // 10
