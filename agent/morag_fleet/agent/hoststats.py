"""Host figures for the heartbeat: CPU, memory and disk via psutil, GPUs via NVML when the driver
and nvidia-ml-py are present. NVML is opened once and kept open: opening it is slow next to a
heartbeat, which may run every second."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psutil


class HostStats:
    """Call `sample()` from one thread; `close()` releases NVML."""

    def __init__(self, disk_path: str | Path = "/") -> None:
        self._disk_path = str(disk_path) if Path(disk_path).exists() else "/"
        psutil.cpu_percent(interval=None)  # primes the counter so the first sample is real
        self._nvml: Any = None
        self._gpu_handles: list[Any] = []
        self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._gpu_handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
        except Exception:  # no library, no driver or no device: a host without GPUs
            self._nvml = None
            self._gpu_handles = []

    def sample(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        try:
            disk_percent: float | None = psutil.disk_usage(self._disk_path).percent
        except OSError:
            disk_percent = None
        return {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": memory.percent,
            "memory_available_mb": memory.available // 2**20,
            "disk_percent": disk_percent,
            "load1": psutil.getloadavg()[0],
            "gpus": self.gpus(),
        }

    def gpus(self) -> list[dict[str, Any]]:
        """Utilisation %, memory MiB and temperature °C per GPU; a failing GPU reports its error."""
        if self._nvml is None:
            return []
        nvml = self._nvml
        result = []
        for index, handle in enumerate(self._gpu_handles):
            try:
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                temp = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                result.append({"index": index, "util": util.gpu,
                               "memory_used_mb": memory.used // 2**20,
                               "memory_total_mb": memory.total // 2**20, "temperature": temp})
            except nvml.NVMLError as exc:
                result.append({"index": index, "error": str(exc)})
        return result

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
