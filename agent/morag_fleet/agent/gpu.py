"""GPU inventory for `hello` and `check`: NVML where the driver and nvidia-ml-py are present,
nothing otherwise. Kept apart so that it can be faked in tests of the GPU path."""

from __future__ import annotations

from typing import Any


def gpu_inventory() -> list[dict[str, Any]]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append({"index": index, "name": name if isinstance(name, str) else name.decode(),
                         "memory_total_mb": memory.total // 2**20})
        return gpus
    finally:
        pynvml.nvmlShutdown()


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version if isinstance(version, str) else version.decode()
    finally:
        pynvml.nvmlShutdown()
