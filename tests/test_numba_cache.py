"""A potential class that another process cannot import must not break the
shared on-disk kernel cache (thermo/_numba_cache.py)."""
import os
import subprocess
import sys
import textwrap

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
