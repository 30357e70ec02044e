"""`morag-agent check`: can this host do its job right now? Each check says why not.

The exit code of `check` is the verdict (0 healthy, 1 not), so systemd, Ansible and monitoring
can gate on it; the lines printed tell a person what to fix.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass

from morag_fleet.convert.registry import capabilities
from morag_fleet.cpu import cpu_budget
from morag_fleet.settings import AgentSettings

MIN_FREE_DISK_BYTES = 1024**3


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _writable_dir(name: str, path: os.PathLike[str]) -> CheckResult:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".morag-check")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.unlink(probe)
    except OSError as exc:
        return CheckResult(name, False, f"{path} is not writable: {exc.strerror}")
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_DISK_BYTES:
        return CheckResult(name, False, f"{path}: only {free // 2**20} MB free (< 1024 MB)")
    return CheckResult(name, True, f"{path} writable, {free // 2**30} GB free")


def check_converters(settings: AgentSettings) -> list[CheckResult]:
    results = []
    for content_type, availability in capabilities(settings).items():
        detail = availability.reason or "ready"
        results.append(CheckResult(f"converter {content_type}", availability.ok, detail,
                                   required=False))
    if not any(r.ok for r in results):
        results.append(CheckResult("converters", False, "no configured content type can be "
                                   "converted on this host"))
    return results


def check_api(settings: AgentSettings) -> CheckResult:
    from morag_fleet.jobs.probe import probe_configured_api

    report = probe_configured_api(settings)
    return CheckResult("api", report.ok, f"{settings.api_base_url}: {report.message}")


def check_controller(settings: AgentSettings) -> CheckResult:
    if not settings.controller:
        return CheckResult("controller", True, "not configured (telemetry off)", required=False)
    from morag_fleet.agent.publisher import probe_controller

    ok, detail = probe_controller(settings, timeout=5.0)
    return CheckResult("controller", ok, f"{settings.controller}: {detail}")


def check_gpus(settings: AgentSettings) -> CheckResult:
    from morag_fleet.agent.gpu import driver_version, gpu_inventory

    if not settings.gpus:
        found = gpu_inventory()
        return CheckResult("gpu", True, f"{len(found)} GPU(s) seen, none bound to slots",
                           required=False)
    found = gpu_inventory()
    indexes = {str(g["index"]) for g in found}
    missing = [g for g in settings.gpus if g not in indexes]
    if missing:
        return CheckResult("gpu", False, f"configured GPUs {missing} not found "
                           f"(driver {driver_version() or 'not loaded'})")
    return CheckResult("gpu", True, f"{len(found)} GPU(s), driver {driver_version()}")


def check_cpu_budget(settings: AgentSettings) -> CheckResult:
    """An oversubscribed host still converts, only slower and less predictably, so this warns
    rather than fails; an explicit `cpu_threads` for whisper counts as the slot's threads."""
    budget = cpu_budget(settings.max_concurrent_jobs, settings.slot_threads)
    audio_threads = int(settings.converter_options.get("audio", {}).get("cpu_threads") or 0)
    per_slot = max(budget.threads_per_slot, audio_threads)
    wanted = per_slot * budget.slots
    detail = (f"{budget.slots} slot(s) x {per_slot} thread(s) = {wanted} on "
              f"{budget.usable_cpus:g} usable CPU(s)")
    if wanted > math.ceil(budget.usable_cpus):
        return CheckResult("cpu budget", False, f"{detail}: oversubscribed; lower "
                           "max_concurrent_jobs or slot_threads", required=False)
    return CheckResult("cpu budget", True, detail, required=False)


def check_journal(settings: AgentSettings) -> CheckResult:
    """Damage the agent found in its journal at a start, or finds now: the jobs it lost may need
    a person (the server may still wait for them)."""
    from morag_fleet.agent.journal_check import inspect_offline

    try:
        findings = inspect_offline(settings.state_dir)
    except OSError as exc:
        return CheckResult("journal", False, f"cannot be read: {exc}", required=False)
    if findings:
        return CheckResult("journal", False, "DAMAGED: " + "; ".join(findings), required=False)
    return CheckResult("journal", True, "intact", required=False)


def run_checks(settings: AgentSettings, include_network: bool = True) -> list[CheckResult]:
    results = [
        _writable_dir("state_dir", settings.state_dir),
        check_journal(settings),
        _writable_dir("temp_dir", settings.temp_dir),
        check_cpu_budget(settings),
        *check_converters(settings),
        check_gpus(settings),
    ]
    if include_network:
        results.append(check_api(settings))
        results.append(check_controller(settings))
    return results


def healthy(results: list[CheckResult]) -> bool:
    return all(r.ok for r in results if r.required)
