"""A potential class that another process cannot import must not break the
shared on-disk kernel cache (thermo/_numba_cache.py)."""
import os
import subprocess
import sys
import textwrap

import pytest

MODULE = textwrap.dedent("""
    from typing import NamedTuple
    import numpy as np
    from thermo.potentials.base import Potential, register

    class {name}Data(NamedTuple):
        stiffness: float

    def energy_gradient(data, theta, gradient, rng):
        gradient[:] = 2.0 * data.stiffness * theta
        return data.stiffness * np.sum(theta ** 2)

    register({name}Data, energy_gradient)

    class {name}(Potential):
        def __init__(self):
            super().__init__(2, {name}Data(1.5))
""")

SCRIPT = "import numpy as np, {module}; print({module}.{name}().energy(np.ones(2)))"


def _run(tmp_path, module, name):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(tmp_path / module))
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module, name=name)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.strip())


def test_index_with_unimportable_class_is_ignored(tmp_path):
    for module, name in (("first_module", "First"), ("second_module", "Second")):
        (tmp_path / module).mkdir()
        (tmp_path / module / f"{module}.py").write_text(MODULE.format(name=name))
    # The first process caches kernels specialised on first_module.FirstData;
    # the second cannot import first_module and must still run (and so must
    # the first again, whose entry the second rewrote).
    assert _run(tmp_path, "first_module", "First") == 3.0
    assert _run(tmp_path, "second_module", "Second") == 3.0
    assert _run(tmp_path, "first_module", "First") == 3.0


EDITED = textwrap.dedent("""
    from typing import NamedTuple
    import numpy as np
    import thermo
    from thermo.potentials import Potential, register

    class SpringData(NamedTuple):
        stiffness: float

    def energy_gradient(data, theta, gradient, rng):
        gradient[:] = {factor} * data.stiffness * theta
        return {factor} * data.stiffness * 0.5 * np.sum(theta ** 2)

    register(SpringData, energy_gradient)
    potential = Potential(2, SpringData(1.0))
    run = thermo.sample(potential, "sgld", theta0=np.ones(2), n_steps=3, step_size=1e-12,
                        beta=1.0, seed=0, record_every=1)
    print(potential.energy(np.ones(2)), round(run.observables["energy"][0], 6))
""")


def test_edited_implementation_is_recompiled_not_loaded_stale(tmp_path):
    # A user edits the energy function of the same class in the same script:
    # kernels cached for the old code must not be reused.
    script = tmp_path / "user_script.py"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    outputs = []
    for factor in (1.0, 100.0):
        script.write_text(EDITED.format(factor=factor))
        result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append([float(value) for value in result.stdout.split()])
    assert outputs[0] == pytest.approx([1.0, 1.0], rel=1e-4)
    assert outputs[1] == pytest.approx([100.0, 100.0], rel=1e-4)


# --- cache stamps carry thermo's source fingerprint --------------------------

PACKAGE_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "thermo")

USER_KERNEL = textwrap.dedent("""
    import numpy as np
    from numba import njit
    from thermo._sums import sum_of_squares

    @njit(cache=True)
    def total(x):
        return sum_of_squares(x, 1.0)
""")

USER_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from numba.core import caching
    import thermo._numba_cache
    if sys.argv[1] == "unstamped":        # the negative control: Numba's own stamp only
        mixin = caching._SourceFileBackedLocatorMixin
        mixin.get_source_stamp = mixin._thermo_original_get_source_stamp
    import user_kernel
    print(user_kernel.total(np.ones(8)))
""")


def test_every_kernel_module_sets_numba_up_before_its_kernels():
    # the stamps (and the threading layer) are installed by importing
    # thermo._numba_cache; a cached kernel decorated before that would miss them
    import re
    offenders = []
    for directory, _, files in os.walk(PACKAGE_ROOT):
        for name in files:
            if not name.endswith(".py") or name == "_numba_cache.py":
                continue
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            kernels = [i for i, line in enumerate(lines) if re.match(r"\s*@.*cache=True", line)]
            setup = [i for i, line in enumerate(lines)
                     if line.startswith("from thermo import _numba_cache")]
            if kernels and not (setup and setup[0] < kernels[0]):
                offenders.append(os.path.relpath(path, PACKAGE_ROOT))
    assert not offenders


def test_source_fingerprint_sees_every_module(tmp_path):
    from thermo._numba_cache import source_fingerprint
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "sub" / "b.py").write_text("y = 2\n")
    first = source_fingerprint(str(root))
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "a.nbi").write_text("ignored")
    (root / "notes.txt").write_text("ignored")
    assert source_fingerprint(str(root)) == first
    (root / "sub" / "b.py").write_text("y = 3\n")
    edited = source_fingerprint(str(root))
    assert edited != first
    (root / "sub" / "b.py").rename(root / "sub" / "c.py")
    assert source_fingerprint(str(root)) not in (first, edited)


@pytest.mark.parametrize("stamps, after_edit", [("stamped", 16.0), ("unstamped", 8.0)])
def test_editing_a_called_helper_recompiles_its_cached_callers(tmp_path, stamps, after_edit):
    # A user's cached kernel calls thermo's sum_of_squares.  Editing thermo's
    # _sums.py (as a `git pull` on an editable install would) must not leave
    # the caller running the old code from its cache.  The unstamped control
    # shows the hazard: Numba's own stamp checks only the caller's file.
    import shutil
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE_ROOT, copy / "thermo",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (copy / "user_kernel.py").write_text(USER_KERNEL)
    (copy / "run.py").write_text(USER_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(copy))

    def run():
        result = subprocess.run([sys.executable, str(copy / "run.py"), stamps], env=env,
                                capture_output=True, text=True, timeout=300, cwd=str(copy))
        assert result.returncode == 0, result.stderr[-2000:]
        return float(result.stdout.strip())

    assert run() == 8.0
    assert run() == 8.0                      # now from the cache
    sums = copy / "thermo" / "_sums.py"
    sums.write_text(sums.read_text().replace("return (s0 + s1) + (s2 + s3)",
                                             "return 2.0 * ((s0 + s1) + (s2 + s3))"))
    assert run() == after_edit
