"""CUDA device detection shared by thermo's GPU code.

thermo's GPU kernels are written with ``numba.cuda``.  They run on an NVIDIA
GPU, or -- slowly, thread by thread in Python -- under Numba's CUDA simulator,
which is switched on by the environment variable ``NUMBA_ENABLE_CUDASIM=1``
*before* ``numba.cuda`` is first imported (the test suite runs its GPU tests in
a subprocess with that variable set).

Nothing here initialises a CUDA context at import time: importing thermo never
touches a GPU.
"""
from __future__ import annotations

__all__ = ["NO_GPU_MESSAGE", "simulator_enabled", "cuda_available", "require_cuda",
           "device_name"]

#: Message of the error raised when ``device="cuda"`` is asked for without a GPU.
NO_GPU_MESSAGE = ("no CUDA GPU available (numba.cuda.is_available() is False); "
                  "use device='cpu'")


def simulator_enabled():
    """True when Numba's CUDA simulator is active (``NUMBA_ENABLE_CUDASIM=1``).

    Returns
    -------
    bool
    """
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def cuda_available():
    """True when CUDA kernels can run: a usable GPU, or the simulator.

    Returns
    -------
    bool
    """
    if simulator_enabled():
        return True
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit counts as "no GPU"
        return False


def require_cuda():
    """Raise unless CUDA kernels can run.

    Raises
    ------
    RuntimeError
        With :data:`NO_GPU_MESSAGE` when there is neither a GPU nor the
        simulator.
    """
    if not cuda_available():
        raise RuntimeError(NO_GPU_MESSAGE)


def device_name():
    """Name of the current CUDA device, ``"simulator"`` or ``None``.

    Returns
    -------
    str or None
    """
    if simulator_enabled():
        return "simulator"
    if not cuda_available():
        return None
    from numba import cuda
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)
