"""The agent's settings: defaults < YAML file < MORAG_* environment < command-line flags.

The keys, environment names and flags of MoRAG's own remote converter keep working, so a config
written for it loads unchanged. Every value is checked once here; an unknown key or a
bad value is a `SettingsError` naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from morag_fleet import settings_rules as rules
from morag_fleet.paths import default_state_dir

CONTENT_TYPES = ("audio", "video", "document", "image", "web", "youtube")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_CONFIG_FILE = "remote_converter_config.yaml"

# Task-description environment names that do not follow MORAG_<KEY>.
LEGACY_ENV = {
    "MORAG_WORKER_ID": "worker_id",
    "MORAG_API_BASE_URL": "api_base_url",
    "MORAG_API_KEY": "api_key",
    "MORAG_WORKER_CONTENT_TYPES": "content_types",
    "MORAG_WORKER_POLL_INTERVAL": "poll_interval",
    "MORAG_WORKER_MAX_CONCURRENT_JOBS": "max_concurrent_jobs",
    "MORAG_LOG_LEVEL": "log_level",
    "MORAG_TEMP_DIR": "temp_dir",
    "MORAG_STATE_DIR": "state_dir",
    "MORAG_CONTROLLER": "controller",
}

DEFAULT_JOB_TIMEOUTS = {
    "audio": 1800.0,
    "video": 3600.0,
    "document": 900.0,
    "image": 300.0,
    "web": 300.0,
    "youtube": 3600.0,
}


class SettingsError(ValueError):
    """A setting is unknown or invalid; the message names the key and its source."""


def _default_state_dir() -> Path:
    return default_state_dir("morag-agent")


@dataclass
class AgentSettings:
    """Everything the agent can be told. Field comments are shown by `show-config`."""

    worker_id: str = field(default_factory=lambda: f"remote-worker-{socket.gethostname()}")
    api_base_url: str = "http://localhost:8000"
    api_key: str | None = field(default=None, repr=False)  # never in a repr or a log
    # a file holding the API key, so the key is not on a command line (docs/security.md)
    api_key_file: str | None = None
    content_types: list[str] = field(default_factory=lambda: list(CONTENT_TYPES))
    poll_interval: float = 10.0
    max_concurrent_jobs: int = 2
    log_level: str = "INFO"
    log_format: str = "auto"  # auto | json | console
    temp_dir: Path = Path("/tmp/morag_remote")
    # no claims while temp_dir has less free space than this (docs/operations-disk.md)
    min_free_disk_mb: int = 256
    state_dir: Path = field(default_factory=_default_state_dir)
    # HTTP
    verify_tls: bool = True
    ca_bundle: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    submit_timeout: float = 600.0
    long_poll_wait: float = 30.0
    max_download_bytes: int = 4 * 1024**3
    # jobs and slots
    job_timeouts: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_JOB_TIMEOUTS))
    slot_memory_limit_mb: int = 6144
    # threads each slot's converters use; 0 shares the usable CPUs (affinity, cgroup quota)
    # evenly among the slots
    slot_threads: int = 0
    gpus: list[str] = field(default_factory=list)
    shutdown_grace: float = 120.0
    max_job_crashes: int = 3
    outbox_retry_max: float = 300.0
    # converters: backend per content type and options per converter
    converters: dict[str, str] = field(default_factory=dict)
    converter_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # convert a shipped sample of each type at start, before READY; a type whose output is wrong
    # is not polled for (docs/selftest.md)
    selftest: bool = True
    # telemetry
    controller: str | None = None
    controller_public_key: str | None = None
    agent_key_file: str | None = None
    telemetry_plaintext: bool = False
    heartbeat_interval: float = 5.0

    def redacted(self) -> dict[str, Any]:
        """A plain dict for display, with the API key hidden."""
        data = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if data.get("api_key"):
            data["api_key"] = "***"
        return data

    def job_timeout(self, content_type: str) -> float:
        return float(self.job_timeouts.get(content_type, 3600.0))


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return value


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(AgentSettings)}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Turn a YAML/env/flag value into the field's type, or raise naming key and source."""
    kind = _field_types()[key]
    where = f"{key!r} (from {source})"
    try:
        if kind.startswith("list"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if kind.startswith("dict"):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, Mapping):
                raise SettingsError(f"{where} must be a mapping, got {type(value).__name__}")
            return dict(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"{where} must be true or false, got {value!r}")
        if kind == "int":
            return rules.exact_int(value)
        if kind == "float":
            return rules.finite_float(value)
        if kind == "Path":
            return Path(str(value)).expanduser()
        if value is None:
            return None
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{where} has a bad value {value!r}: {exc}") from None


def _validate(settings: AgentSettings, sources: Mapping[str, str]) -> None:
    def fail(key: str, message: str) -> None:
        raise SettingsError(f"{key!r} (from {sources.get(key, 'defaults')}) {message}")

    unknown = [t for t in settings.content_types if t not in CONTENT_TYPES]
    if unknown:
        fail("content_types", f"has unknown types {unknown}; known: {', '.join(CONTENT_TYPES)}")
    if not settings.content_types:
        fail("content_types", "must name at least one content type")
    if settings.poll_interval <= 0:
        fail("poll_interval", "must be > 0")
    if not 1 <= settings.max_concurrent_jobs <= 256:
        fail("max_concurrent_jobs", "must be between 1 and 256")
    settings.log_level = settings.log_level.upper()
    if settings.log_level not in LOG_LEVELS:
        fail("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    if settings.log_format not in ("auto", "json", "console"):
        fail("log_format", "must be auto, json or console")
    _check_rules(settings, fail)
    settings.api_base_url = settings.api_base_url.rstrip("/")
    for name in ("connect_timeout", "read_timeout", "submit_timeout", "shutdown_grace",
                 "heartbeat_interval", "outbox_retry_max"):
        if getattr(settings, name) <= 0:
            fail(name, "must be > 0")
    if settings.long_poll_wait < 0:
        fail("long_poll_wait", "must be >= 0")
    if settings.max_download_bytes <= 0:
        fail("max_download_bytes", "must be > 0")
    if settings.slot_threads < 0:
        fail("slot_threads", "must be >= 0 (0 shares the host's CPUs among the slots)")
    if settings.max_job_crashes < 1:
        fail("max_job_crashes", "must be >= 1")
    if settings.slot_memory_limit_mb < 0:
        fail("slot_memory_limit_mb", "must be >= 0 (0 turns the limit off)")
    if settings.min_free_disk_mb < 0:
        fail("min_free_disk_mb", "must be >= 0 (0 turns the check off)")
    if settings.controller and not settings.controller.startswith(("tcp://", "ipc://")):
        fail("controller", "must be a ZeroMQ endpoint like tcp://host:5555")


def _check_rules(settings: AgentSettings, fail: rules.Fail) -> None:
    """The checks that live in `settings_rules`; their `ValueError` names no key, so each is
    turned into a failure for its key here."""
    checks: list[tuple[str, Any]] = [
        ("api_base_url", lambda: rules.check_api_url(settings.api_base_url)),
        ("worker_id", lambda: rules.check_worker_id(settings.worker_id)),
        ("job_timeouts", lambda: rules.check_timeouts(settings.job_timeouts, CONTENT_TYPES)),
        ("converters", lambda: rules.check_converters(settings.converters, CONTENT_TYPES)),
        ("converter_options",
         lambda: rules.check_converter_options(settings.converter_options, CONTENT_TYPES)),
    ]
    for key, check in checks:
        try:
            checked = check()
        except ValueError as exc:
            fail(key, str(exc))
        if key == "job_timeouts":
            settings.job_timeouts = {**DEFAULT_JOB_TIMEOUTS, **checked}
    if settings.api_key_file:
        if settings.api_key:
            fail("api_key_file", "and api_key are both set; keep the key in one place")
        try:
            settings.api_key = rules.read_secret_file(settings.api_key_file)
        except ValueError as exc:
            fail("api_key_file", str(exc))


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """MORAG_<KEY> for every key, plus the remote converter's legacy names."""
    found: dict[str, tuple[Any, str]] = {}
    names = set(_field_types())
    for env_name, value in environ.items():
        if not env_name.startswith("MORAG_"):
            continue
        key = LEGACY_ENV.get(env_name) or env_name[len("MORAG_"):].lower()
        if key in names:
            found[key] = (value, f"environment {env_name}")
    return found


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping of keys")
    return data


def load_settings(
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentSettings:
    """Merge the four layers; the config file is the flag's, else MORAG_CONFIG, else the legacy
    `remote_converter_config.yaml` in the working directory when it exists."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[dict[str, Any], str]] = []
    path = config_file or environ.get("MORAG_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        layers.append((read_config_file(Path(path)), f"config file {path}"))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    names = set(_field_types())
    for data, source in layers:
        for key, value in data.items():
            if key not in names:
                raise SettingsError(f"unknown key {key!r} in {source}")
            values[key] = _coerce(key, value, source)
            sources[key] = source
    for key, (value, source) in env_overrides(environ).items():
        values[key] = _coerce(key, value, source)
        sources[key] = source
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in names:
            raise SettingsError(f"unknown setting {key!r} from command line")
        values[key] = _coerce(key, value, "command line")
        sources[key] = "command line"
    settings = AgentSettings(**values)
    _validate(settings, sources)
    return settings


def sample_config() -> str:
    """The file `create-config` writes: the remote converter's keys first, then the rest."""
    sample = {
        "worker_id": "gpu-worker-01",
        "api_base_url": "https://morag.example.com",
        "api_key": "your-api-key-here",
        "content_types": ["audio", "video"],
        "poll_interval": 10,
        "max_concurrent_jobs": 2,
        "log_level": "INFO",
        "temp_dir": "/tmp/morag_remote",
        "state_dir": "/var/lib/morag-agent",
        "shutdown_grace": 120,
        "gpus": [],
        "converter_options": {"audio": {"device": "auto", "beam_size": 5}},
        "controller": "tcp://controller.example.com:5555",
        "controller_public_key": "/etc/morag-agent/controller.key",
        "agent_key_file": "/etc/morag-agent/agent.key_secret",
    }
    return yaml.safe_dump(sample, sort_keys=False, default_flow_style=False)
