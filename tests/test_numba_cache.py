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
