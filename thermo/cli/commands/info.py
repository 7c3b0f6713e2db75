"""``thermo info``: versions, Numba threading and whether a CUDA GPU is present."""
from __future__ import annotations

import json
import os

from thermo.cli.common import parse_flags, provenance

__all__ = ["main", "collect"]


def _cuda():
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda
        return {"available": False, "reason": "numba.cuda missing"}
    try:
        available = bool(cuda.is_available())
    except Exception as error:  # noqa: BLE001 - driver problems come as many types
        return {"available": False, "reason": str(error).splitlines()[0]}
    if not available:
        return {"available": False, "reason": "no CUDA driver or device"}
    devices = []
    try:
        for device in cuda.list_devices():
            name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
            devices.append(name)
    except Exception:  # noqa: BLE001
        pass
    return {"available": True, "devices": devices}


def collect():
    """Information about the installation.

    Returns
    -------
    dict
    """
    import numba

    info = provenance()
    info.pop("command_line", None)
    info.pop("started", None)
    info["optional"] = {}
    from importlib import metadata

    for package in ("tqdm", "matplotlib", "pydiffmap", "dask", "distributed", "mpi4py",
                    "pandas", "tomli-w"):
        try:
            info["optional"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info["optional"][package] = None
    info["numba"] = {"threads": numba.get_num_threads(),
                     "max_threads": numba.config.NUMBA_NUM_THREADS,
                     "threading_layer": numba.config.THREADING_LAYER,
                     "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"),
                     "cpu_count": os.cpu_count()}
    info["cuda"] = _cuda()
    return info


def main(flags):
    """Run ``thermo info``.

    Parameters
    ----------
    flags : dict

    Returns
    -------
    int
    """
    context = parse_flags("info", flags)
    info = collect()
    if context.options["json"]:
        print(json.dumps(info, indent=2))
        return 0
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(f"versions: {versions}")
    optional = ", ".join(f"{k} {v or '-'}" for k, v in info["optional"].items())
    print(f"optional: {optional}")
    nb = info["numba"]
    print(f"numba threads: {nb['threads']} of {nb['max_threads']} "
          f"(layer {nb['threading_layer']}, {nb['cpu_count']} CPUs)")
    cuda = info["cuda"]
    if cuda["available"]:
        print(f"CUDA GPU: yes ({', '.join(cuda.get('devices', [])) or 'unnamed'})")
    else:
        print(f"CUDA GPU: no ({cuda.get('reason', '')})")
    return 0
