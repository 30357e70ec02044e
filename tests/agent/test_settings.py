"""Settings layers: defaults < YAML file < MORAG_* environment < flags, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from morag_fleet.settings import SettingsError, load_settings


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_layers_override_in_order(tmp_path: Path) -> None:
    config = write(tmp_path, {"worker_id": "from-file", "poll_interval": 7,
                              "max_concurrent_jobs": 3, "log_level": "debug"})
    env = {"MORAG_WORKER_POLL_INTERVAL": "4", "MORAG_WORKER_ID": "from-env"}
    settings = load_settings(config, {"worker_id": "from-flag"}, environ=env)
    assert settings.worker_id == "from-flag"
    assert settings.poll_interval == 4.0
    assert settings.max_concurrent_jobs == 3
    assert settings.log_level == "DEBUG"


def test_file_beats_defaults_and_env_is_not_a_silent_default(tmp_path: Path) -> None:
    """The task description's loader let environment defaults override the YAML file."""
    config = write(tmp_path, {"api_base_url": "http://file.example:9000/"})
    settings = load_settings(config, {}, environ={})
    assert settings.api_base_url == "http://file.example:9000"
    assert settings.content_types == ["audio", "video", "document", "image", "web", "youtube"]


def test_task_description_environment_names(tmp_path: Path) -> None:
    env = {
        "MORAG_API_BASE_URL": "https://morag.example",
        "MORAG_API_KEY": "s3cret-token",
        "MORAG_WORKER_CONTENT_TYPES": "audio,video",
        "MORAG_WORKER_MAX_CONCURRENT_JOBS": "5",
        "MORAG_LOG_LEVEL": "WARNING",
        "MORAG_TEMP_DIR": str(tmp_path / "t"),
        "MORAG_CONTROLLER": "tcp://127.0.0.1:5555",
        "MORAG_SHUTDOWN_GRACE": "42",
    }
    settings = load_settings(None, {}, environ=env)
    assert settings.content_types == ["audio", "video"]
    assert settings.max_concurrent_jobs == 5
    assert settings.temp_dir == tmp_path / "t"
    assert settings.controller == "tcp://127.0.0.1:5555"
    assert settings.shutdown_grace == 42.0
    assert settings.redacted()["api_key"] == "***"


@pytest.mark.parametrize(
    ("data", "env", "needle"),
    [
        ({"max_concurent_jobs": 2}, {}, "unknown key 'max_concurent_jobs' in config file"),
        ({"poll_interval": "soon"}, {}, "'poll_interval' (from config file"),
        ({"content_types": ["audio", "pdf"]}, {}, "'content_types' (from config file"),
        ({}, {"MORAG_WORKER_MAX_CONCURRENT_JOBS": "many"},
         "environment MORAG_WORKER_MAX_CONCURRENT_JOBS"),
        ({"api_base_url": "ftp://x"}, {}, "'api_base_url' (from config file"),
        ({"verify_tls": "maybe"}, {}, "must be true or false"),
    ],
)
def test_bad_values_name_key_and_source(tmp_path: Path, data: dict, env: dict,
                                        needle: str) -> None:
    config = write(tmp_path, data)
    with pytest.raises(SettingsError) as info:
        load_settings(config, {}, environ=env)
    assert needle in str(info.value)


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("worker_id: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(path, {}, environ={})


def run_agent_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "morag_fleet.cli.agent_main", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_cli_create_show_config_redacts_key(tmp_path: Path) -> None:
    made = run_agent_cli("--create-config", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    sample = tmp_path / "remote_converter_config.yaml.example"
    data = yaml.safe_load(sample.read_text())
    data["state_dir"] = str(tmp_path / "state")
    (tmp_path / "remote_converter_config.yaml").write_text(yaml.safe_dump(data))
    shown = run_agent_cli("show-config", "--max-jobs", "7", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "your-api-key-here" not in shown.stdout
    assert yaml.safe_load(shown.stdout)["max_concurrent_jobs"] == 7
    bad = run_agent_cli("show-config", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "cannot read config file" in bad.stderr
