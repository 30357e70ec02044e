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
    """The remote converter's loader let environment defaults override the YAML file."""
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


# ----- values that pass a type check and then hurt (NaN, fractions, shapes, limits) --------------

LONG_ID = "w" * 200


@pytest.mark.parametrize(
    ("yaml_text", "key", "says"),
    [
        ("poll_interval: .nan\nlong_poll_wait: 0\n", "poll_interval", "finite"),
        ("heartbeat_interval: .inf\n", "heartbeat_interval", "finite"),
        ("shutdown_grace: -.inf\n", "shutdown_grace", "finite"),
        ("job_timeouts: {audio: .nan}\n", "job_timeouts", "not a number of seconds"),
        ("job_timeouts: {document: soon}\n", "job_timeouts", "'soon' is not a number"),
        (f"worker_id: {LONG_ID}\n", "worker_id", "at most 128"),
        ("converter_options: {document: 5}\n", "converter_options", "entry document"),
        ("converter_options: {audio: {beam_size: .inf}}\n", "converter_options", "finite"),
        ("max_concurrent_jobs: 2.9\n", "max_concurrent_jobs", "whole number"),
        ("slot_memory_limit_mb: -5\n", "slot_memory_limit_mb", ">= 0"),
        ("api_base_url: 'http://'\n", "api_base_url", "no host name"),
        ("api_base_url: 'http://host:99999'\n", "api_base_url", "not a valid URL"),
        ("min_free_disk_mb: -1\n", "min_free_disk_mb", ">= 0"),
    ],
)
def test_hurtful_values_are_clear_errors_from_the_real_cli(tmp_path: Path, yaml_text: str,
                                                          key: str, says: str) -> None:
    """Each passed validation before and then spun, crashed or was silently changed; now the
    real CLI refuses it with exit 2, naming the key and the file, without a traceback."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text + f"state_dir: {tmp_path / 'state'}\n")
    shown = run_agent_cli("show-config", "--config", str(config), cwd=tmp_path)
    assert shown.returncode == 2, shown.stdout
    assert f"'{key}' (from config file {config})" in shown.stderr
    assert says in shown.stderr
    assert "Traceback" not in shown.stderr


def test_nan_from_a_flag_and_from_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="'poll_interval' \\(from command line\\)"):
        load_settings(None, {"poll_interval": float("nan")}, environ={})
    with pytest.raises(SettingsError, match="environment MORAG_HEARTBEAT_INTERVAL"):
        load_settings(None, {}, environ={"MORAG_HEARTBEAT_INTERVAL": "inf"})
    whole = load_settings(None, {}, environ={"MORAG_WORKER_MAX_CONCURRENT_JOBS": "3"})
    assert whole.max_concurrent_jobs == 3


# ----- the API key from a file, not the command line ---------------------------------------------

def test_api_key_file_flag_and_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text("file-held-key-93\n")
    shown = run_agent_cli("show-config", "--json", "--api-key-file", str(key_file),
                          "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "file-held-key-93" not in shown.stdout + shown.stderr
    assert '"api_key": "***"' in shown.stdout
    settings = load_settings(None, {}, environ={"MORAG_API_KEY_FILE": str(key_file)})
    assert settings.api_key == "file-held-key-93"
    with pytest.raises(SettingsError, match="'api_key_file' \\(from environment"):
        load_settings(None, {}, environ={"MORAG_API_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="both set"):
        load_settings(None, {"api_key": "x"}, environ={"MORAG_API_KEY_FILE": str(key_file)})


def test_api_key_flag_warns(tmp_path: Path) -> None:
    shown = run_agent_cli("show-config", "--api-key", "flag-key", "--state-dir",
                          str(tmp_path / "state"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "warning: --api-key shows the key in the process list" in shown.stderr


def test_api_key_file_authenticates_against_a_real_server(tmp_path: Path) -> None:
    from tests.support.jobserver import running_jobserver

    key_file = tmp_path / "api.key"
    key_file.write_text("server-token-5521")
    with running_jobserver(tmp_path / "server", token="server-token-5521") as server:
        ok = run_agent_cli("test-connection", "--api-url", server.url, "--api-key-file",
                           str(key_file), "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
        key_file.write_text("wrong-token")
        refused = run_agent_cli("test-connection", "--api-url", server.url, "--api-key-file",
                                str(key_file), "--state-dir", str(tmp_path / "state"),
                                cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert refused.returncode == 1, refused.stdout + refused.stderr
