"""Tests of the ``thermo`` command: option table, config files, help, bad inputs."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from thermo.cli import options as opt
from thermo.cli.config import compare_for_resume, resolve
from thermo.cli.main import build_parser, main


def run(argv, capsys):
    """Run ``thermo argv`` in this process: (status, stdout, stderr)."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err):
    assert status not in (0, None), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err


def digest(directory):
    """Hash of every file (name, bytes) under ``directory``."""
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(directory)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(path.encode())
            with open(path, "rb") as handle:
                h.update(handle.read())
    return h.hexdigest()


# --- option table

def test_every_option_documented_and_default_valid():
    for command in opt.COMMANDS:
        for option in opt.options_for(command).values():
            assert len(option.help) > 10, option.name
            assert option.kind in ("int", "float", "str", "bool", "path", "int_list",
                                   "float_list", "str_list")
            if option.default is not None:
                assert opt.convert(option, option.default) == option.default, option.name


def test_help_lists_defaults_and_units():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["sample"]
    text = sub.format_help()
    for option in opt.options_for("sample").values():
        assert option.flag in text
    assert "[default: 0.01; unit: time]" in text.replace("\n", " ").replace("  ", " ") \
        or "default: 0.01" in text
    assert "unit: 1/U" in text


def test_markdown_table_has_every_flag():
    table = opt.markdown_table("metad")
    for option in opt.options_for("metad").values():
        assert f"`{option.flag}`" in table


@pytest.mark.parametrize("kind, value, expected", [
    ("int", "12", 12), ("float", "1e-3", 1e-3), ("bool", "yes", True),
    ("int_list", "8, 4", (8, 4)), ("int_list", "", ()), ("float", 2, 2.0),
])
def test_convert(kind, value, expected):
    option = opt.Option("x", kind, None, "x")
    assert opt.convert(option, value) == expected


@pytest.mark.parametrize("name, value, message", [
    ("step_size", "0", "must be > 0"), ("step_size", "nan", "finite"),
    ("step_size", "inf", "finite"), ("steps", "1.5", "integer"), ("steps", True, "integer"),
    ("sampler", "magic", "is not one of"), ("hidden", "4,x", "integer"),
    ("momentum", "1", "must be < 1"),
])
def test_convert_errors(name, value, message):
    option = next(o for o in opt.OPTIONS if o.name == name)
    with pytest.raises(opt.OptionError, match=message):
        opt.convert(option, value)


def test_bias_factor_accepts_inf():
    option = opt.options_for("metad")["bias_factor"]
    assert opt.convert(option, "inf") == float("inf")


# --- config files

def test_config_precedence(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 50\nstep_size = 0.5\nlearning_rate = 0.1\n'
                    '[sample]\nstep-size = 0.25\nfriction = 3\n')
    values = resolve("sample", {"config": str(path), "friction": "4"})
    assert values["steps"] == 50             # top level
    assert values["step_size"] == 0.25       # [sample] table wins over top level
    assert values["friction"] == 4.0         # flag wins over the file
    assert values["beta"] == 1.0             # default
    assert "learning_rate" not in values     # other command's option ignored


@pytest.mark.parametrize("content, message", [
    ("stepz = 3\n", "unknown option 'stepz'"),
    ("[sample]\nlearning_rate = 0.1\n", "not accepted by 'thermo sample'"),
    ("steps = 'many'\n", "expected an integer"),
    ("[bogus]\nx = 1\n", "unknown table"),
])
def test_config_errors(tmp_path, content, message):
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        resolve("sample", {"config": str(path)})


def test_resume_comparison():
    saved = resolve("sample", {"steps": "100"})
    compare_for_resume("sample", saved, resolve("sample", {"steps": "200", "quiet": "true"}))
    with pytest.raises(ValueError, match="--step-size"):
        compare_for_resume("sample", saved, resolve("sample", {"step_size": "0.5"}))
    with pytest.raises(ValueError, match="steps decreased"):
        compare_for_resume("sample", saved, resolve("sample", {"steps": "50"}))


# --- start-up and info

def test_cli_imports_are_light():
    code = ("import sys, thermo.cli.main as m; m.build_parser(); "
            "heavy = [x for x in ('numpy', 'numba', 'h5py', 'scipy') if x in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_help_is_fast():
    """``thermo --help`` needs < 1 s of CPU (CPU time, not wall time: robust on busy hosts)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "thermo.cli", "--help"], capture_output=True,
                   check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 1.0, f"thermo --help used {cpu:.2f} s of CPU"


def test_info_json(capsys):
    import json

    status, out, err = run(["info", "--json"], capsys)
    assert status == 0
    info = json.loads(out)
    assert info["numba"]["threads"] >= 1 and "available" in info["cuda"]
    assert "numpy" in info["versions"]


def test_dataset(tmp_path, capsys):
    path = tmp_path / "d.csv"
    status, _, err = run(["dataset", "--dataset", "spiral", "--n-points", "20",
                          "--signed-labels", "--output", str(path), "--quiet"], capsys)
    assert status == 0 and err == ""
    lines = path.read_text().splitlines()
    assert lines[0] == "x1,x2,label" and len(lines) == 21
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} == {"-1", "1"}


# --- bad inputs: one line, non-zero exit, outputs untouched

@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished small run directory and some input files."""
    base = tmp_path_factory.mktemp("bad-inputs")
    run_dir = base / "good"
    status = main(["sample", "--potential", "double-well", "--steps", "200", "--record-every",
                   "10", "--output", str(run_dir), "--quiet", "--no-figures", "--no-check"])
    assert status == 0
    (base / "bad.toml").write_text("steps = = 1\n")
    (base / "ragged.csv").write_text("x1,x2,label\n1.0,2.0,0\n3.0,1\n")
    (base / "one_column.csv").write_text("label\n0\n1\n")
    (base / "nan.csv").write_text("x1,x2,label\n1.0,nan,0\n2.0,1.0,1\n")
    np.save(base / "short.npy", np.zeros(3))
    np.save(base / "nan.npy", np.array([np.nan, 0.0]))
    np.save(base / "dirs.npy", np.zeros((1, 5)))
    (base / "file").write_text("x")
    return base


BAD_INPUTS = [
    ["dataset", "--dataset", "moons"],
    ["dataset", "--n-points", "ten"],
    ["dataset", "--noise", "nan"],
    ["dataset", "--output", "{base}/missing/d.csv"],
    ["dataset", "--output", "{base}/good"],
    ["dataset", "--bogus"],
    ["optimize", "--data", "{base}/absent.csv", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--data", "{base}/ragged.csv", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--data", "{base}/one_column.csv", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--data", "{base}/nan.csv", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--learning-rate", "-1", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--config", "{base}/bad.toml", "--output", "{base}/good", "--overwrite"],
    ["optimize", "--config", "{base}/none.toml"],
    ["sample", "--output", "{base}/good"],
    ["sample", "--potential", "double-well", "--theta0", "{base}/short.npy",
     "--output", "{base}/good", "--overwrite"],
    ["sample", "--potential", "double-well", "--theta0", "{base}/nan.npy",
     "--output", "{base}/good", "--overwrite"],
    ["sample", "--step-size", "inf", "--output", "{base}/good", "--overwrite"],
    ["sample", "--sampler", "magic"],
    ["sample", "--input-format", "csr"],
    ["sample", "--hidden", "4", "--input-format", "sparse", "--output", "{base}/good",
     "--overwrite"],
    ["sample", "--walkers", "0"],
    ["sample", "--resume", "--output", "{base}/good", "--step-size", "0.5"],
    ["sample", "--resume", "--output", "{base}/nowhere"],
    ["sample", "--output", "{base}/file/run"],
    ["sample", "--output", "/proc/thermo-cannot-write"],
    ["metad", "--potential", "double-well", "--cv", "coordinates:9", "--output",
     "{base}/good", "--overwrite"],
    ["metad", "--potential", "double-well", "--cv", "coordinates:0", "--cv-range=2,1",
     "--output", "{base}/good", "--overwrite"],
    ["metad", "--bias-factor", "0.5"],
    ["analyse", "--output", "{base}/a"],
    ["analyse", "--input", "{base}/absent.csv", "--output", "{base}/a"],
    ["analyse", "--input", "{base}/ragged.csv", "--output", "{base}/a"],
    ["analyse", "--input", "{base}/good/observables.csv", "--analyses", "diffmap",
     "--output", "{base}/a"],
    ["analyse", "--input", "{base}/good", "--analyses", "magic"],
    ["analyse", "--input", "{base}/good", "--walker", "3", "--output", "{base}/a"],
    ["analyse", "--input", "{base}/good", "--burn-in", "100000", "--output", "{base}/a"],
    ["landscape", "--potential", "double-well", "--directions", "{base}/dirs.npy",
     "--dimensions", "1", "--output", "{base}/l"],
    ["landscape", "--dimensions", "3"],
    ["landscape", "--directions", "pca", "--output", "{base}/l"],
    ["info", "--verbose"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[" ".join(a)[:60] for a in BAD_INPUTS])
def test_bad_input(argv, good_run, capsys):
    before = digest(good_run / "good")
    argv = [a.format(base=good_run) for a in argv]
    status, out, err = run(argv, capsys)
    assert_one_line_error(status, err)
    assert digest(good_run / "good") == before
    assert not (good_run / "a").exists() and not (good_run / "l").exists()


def test_bad_input_in_subprocess(good_run):
    result = subprocess.run([sys.executable, "-m", "thermo.cli", "sample", "--step-size", "-1",
                             "--output", str(good_run / "good")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_dubious_step_size_warns(tmp_path, capsys):
    status, _, err = run(["sample", "--potential", "double-well", "--barrier", "50",
                          "--steps", "20", "--record-every", "10", "--step-size", "0.5",
                          "--output", str(tmp_path / "r"), "--quiet", "--no-figures"], capsys)
    assert "stability limit" in err
    assert status in (0, 1)  # it may well diverge


def test_analyse_tati_trajectory_and_run_file(tmp_path, capsys):
    from test_io import TATI_RUN

    rows = ["id,step,loss,weight0,weight1,bias0"]
    rng = np.random.default_rng(1)
    for walker in range(2):
        for step in range(1, 61):
            w = rng.standard_normal(3)
            rows.append(f"{walker},{step},{3 + w[0] / 10:.8f},{w[0]:.8f},{w[1]:.8f},"
                        f"{w[2]:.8f}")
    (tmp_path / "trajectory.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "run.csv").write_text(TATI_RUN)
    status, out, err = run(["analyse", "--input", str(tmp_path / "trajectory.csv"),
                            "--run-file", str(tmp_path / "run.csv"), "--analyses",
                            "averages,covariance", "--output", str(tmp_path / "a"),
                            "--no-figures"], capsys)
    assert status == 0, err
    averages = (tmp_path / "a" / "averages.csv").read_text()
    assert "kinetic_energy" in averages and "average_virials" in averages
    eigen = (tmp_path / "a" / "covariance.csv").read_text().splitlines()
    assert eigen[0] == "index,eigenvalue" and len(eigen) == 4
    status, _, err = run(["analyse", "--input", str(tmp_path / "trajectory.csv"),
                          "--walker", "1", "--analyses", "covariance", "--output",
                          str(tmp_path / "b"), "--no-figures", "--quiet"], capsys)
    assert status == 0, err
    with np.load(tmp_path / "b" / "pca.npz") as pca:
        data = np.loadtxt(tmp_path / "trajectory.csv", delimiter=",", skiprows=1)
        one = data[data[:, 0] == 1][:, 3:]
        assert np.allclose(pca["mean"], one.mean(axis=0))


# --- --device cuda

@pytest.mark.parametrize("extra, message", [
    (["--sampler", "hmc"], "--sampler sgld or baoab (not hmc)"),
    (["--potential", "double-well"], "--potential network"),
    (["--accuracy"], "no --accuracy"),
    (["--executor", "process"], "--executor inprocess"),
    (["--auto-threads"], "no --auto-threads"),
])
def test_device_cuda_unsupported(extra, message, tmp_path, capsys):
    output = tmp_path / "r"
    status, _, err = run(["sample", "--device", "cuda", "--steps", "2", "--output",
                          str(output), "--no-figures"] + extra, capsys)
    assert_one_line_error(status, err)
    assert "--device cuda needs" in err and message in err
    assert not output.exists()


def test_device_cuda_without_gpu(tmp_path, capsys, monkeypatch):
    import numba.cuda

    from thermo._cuda import simulator_enabled
    if simulator_enabled():
        pytest.skip("this process runs the CUDA simulator")
    monkeypatch.setattr(numba.cuda, "is_available", lambda: False)
    output = tmp_path / "r"
    status, _, err = run(["sample", "--device", "cuda", "--steps", "2", "--output",
                          str(output), "--no-figures"], capsys)
    assert_one_line_error(status, err)
    assert "needs an NVIDIA GPU with a working CUDA driver" in err
    assert not output.exists()


def test_device_cuda_under_simulator(tmp_path):
    output = tmp_path / "r"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING="1")  # no colorama stdout wrapping
    argv = ["sample", "--device", "cuda", "--sampler", "baoab", "--n-points", "12",
            "--batch-size", "4", "--steps", "2", "--record-every", "1", "--step-size",
            "0.01", "--no-check", "--no-figures", "--quiet", "--output", str(output)]
    result = subprocess.run([sys.executable, "-m", "thermo.cli"] + argv, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (output / "observables.csv").read_text().splitlines()
    assert lines[0] == "step,energy,kinetic_energy,kinetic_temperature"
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    assert 'device = "cuda"' in (output / "config.toml").read_text()
    assert (output / "checkpoint.npz").exists() and (output / "theta.npy").exists()


def test_input_format_sparse_and_dense_agree(tmp_path, capsys):
    # a perceptron on a toy set: sparse rows forced, dense rows forced; the
    # kernels differ only in summation order
    energies = {}
    for fmt in ("sparse", "dense"):
        status, out, err = run(["sample", "--data", "two_clusters", "--n-points", "60",
                                "--batch-size", "20", "--steps", "40", "--record-every", "10",
                                "--input-format", fmt, "--output", str(tmp_path / fmt),
                                "--quiet", "--no-figures", "--no-check"], capsys)
        assert status == 0, err
        table = np.genfromtxt(tmp_path / fmt / "observables.csv", delimiter=",", names=True)
        energies[fmt] = table["energy"]
    np.testing.assert_allclose(energies["sparse"], energies["dense"], rtol=1e-9)


@pytest.mark.parametrize("extra, message", [
    (["--walkers", "1"], "--eqn-strength needs --walkers >= 2"),
    (["--sampler", "ccadl"], "--eqn-strength works with --sampler baoab, gla2 or sgld"),
    (["--executor", "process"], "use --executor inprocess"),
    # EQN moves all walkers in one kernel call: there is no chunk to time
    (["--auto-threads"], "--auto-threads does not apply to EQN runs"),
])
def test_eqn_unsupported_before_any_output(extra, message, tmp_path, capsys):
    output = tmp_path / "r"
    status, _, err = run(["sample", "--data", "two_clusters", "--n-points", "40",
                          "--walkers", "2", "--eqn-strength", "0.5", "--steps", "4",
                          "--record-every", "1", "--output", str(output), "--no-figures",
                          "--no-check"] + extra, capsys)
    assert_one_line_error(status, err)
    assert message in err
    assert not output.exists()


def test_auto_threads_gives_the_same_run(tmp_path, capsys):
    # --auto-threads only chooses how many threads run each chunk
    tables = {}
    for name, extra in (("fixed", []), ("auto", ["--auto-threads"])):
        status, out, err = run(["sample", "--data", "two_clusters", "--n-points", "200",
                                "--batch-size", "100", "--steps", "300", "--record-every",
                                "10", "--output", str(tmp_path / name), "--quiet",
                                "--no-figures", "--no-check"] + extra, capsys)
        assert status == 0, err
        tables[name] = np.genfromtxt(tmp_path / name / "observables.csv", delimiter=",",
                                     names=True)
    for column in tables["fixed"].dtype.names:
        np.testing.assert_array_equal(tables["fixed"][column], tables["auto"][column])
    np.testing.assert_array_equal(np.load(tmp_path / "fixed" / "theta.npy"),
                                  np.load(tmp_path / "auto" / "theta.npy"))
