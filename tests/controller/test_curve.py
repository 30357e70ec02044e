"""CurveZMQ between real publisher processes and a real controller process."""

from __future__ import annotations

import shutil
import signal
import stat
from pathlib import Path

from tests.controller.fleet import ControllerProc, PublisherProc, fleet_cli
from tests.support.process import wait_for


def make_keys(base: Path, *names: str) -> dict[str, tuple[Path, Path]]:
    """name -> (public, secret), made with the real `morag-fleet keys`."""
    keys = {}
    for name in names:
        result = fleet_cli("keys", "--dir", str(base / "keys"), "--name", name)
        assert result.returncode == 0, result.stderr
        keys[name] = (base / "keys" / f"{name}.key", base / "keys" / f"{name}.key_secret")
    return keys


def curve_controller(base: Path, keys: dict[str, tuple[Path, Path]],
                     authorized: tuple[str, ...]) -> ControllerProc:
    auth_dir = base / "authorized"
    auth_dir.mkdir()
    for name in authorized:
        shutil.copy(keys[name][0], auth_dir)
    return ControllerProc(base, plaintext=False, extra=(
        "--authorized-keys", str(auth_dir), "--secret-key", str(keys["controller"][1])))


def agent_keys(keys: dict[str, tuple[Path, Path]], name: str) -> tuple[Path, Path]:
    return keys[name][1], keys["controller"][0]


def test_keys_command_writes_a_private_secret_and_refuses_to_overwrite(short_tmp: Path) -> None:
    make_keys(short_tmp, "agent-1")
    secret = short_tmp / "keys" / "agent-1.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" in secret.read_text()
    assert "secret-key" not in (short_tmp / "keys" / "agent-1.key").read_text()
    again = fleet_cli("keys", "--dir", str(short_tmp / "keys"), "--name", "agent-1")
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_authorized_agent_is_accepted_and_unauthorized_refused_until_key_added(
        short_tmp: Path, cleanup: list) -> None:
    keys = make_keys(short_tmp, "controller", "good", "stranger")
    controller = curve_controller(short_tmp, keys, ("good",))
    cleanup.append(controller.start())
    good = PublisherProc(short_tmp, "good", controller.endpoint, keys=agent_keys(keys, "good"))
    stranger = PublisherProc(short_tmp, "stranger", controller.endpoint,
                             keys=agent_keys(keys, "stranger"))
    cleanup += [good, stranger]
    good.send(op="events", count=2)
    wait_for(lambda: good.link_status()["pending_events"] == 0 and good.link_status()[
        "connected"], 60, "the authorized agent's events to be acked")
    status = wait_for(lambda: stranger.link_status()["error"], 60, "the stranger's refusal")
    assert "refused" in status
    assert not stranger.link_status()["connected"]
    stranger.send(op="events", count=1)
    assert controller.agent("stranger") is None
    agents = {a["name"]: a for a in controller.json("agents")}
    assert agents["good"]["key_name"] == "good"
    assert agents["good"]["key"] == keys["good"][0].read_text().split('"')[1]

    # the operator authorizes the stranger: SIGHUP reloads the directory, it gets in and its
    # buffered event arrives
    shutil.copy(keys["stranger"][0], short_tmp / "authorized")
    controller.signal(signal.SIGHUP)
    wait_for(lambda: controller.agent("stranger") is not None, 60, "the stranger to be admitted")
    wait_for(lambda: stranger.link_status()["pending_events"] == 0, 60, "its events acked")
    events = controller.json("events", "--agent", "stranger")
    assert [e["name"] for e in events if e["job_id"] == "job-0"] == [
        "claimed", "converting", "completed"]


def test_an_agent_cannot_take_over_another_agents_name(short_tmp: Path, cleanup: list) -> None:
    keys = make_keys(short_tmp, "controller", "alpha", "beta")
    controller = curve_controller(short_tmp, keys, ("alpha", "beta"))
    cleanup.append(controller.start())
    alpha = PublisherProc(short_tmp, "alpha", controller.endpoint, keys=agent_keys(keys, "alpha"))
    cleanup.append(alpha)
    wait_for(lambda: controller.agent("alpha"), 60, "alpha to appear")
    # beta holds a valid key but claims to be alpha and reports fake jobs
    impostor = PublisherProc(short_tmp, "alpha", controller.endpoint,
                             keys=agent_keys(keys, "beta"))
    cleanup.append(impostor)
    impostor.send(op="events", count=5, prefix="fake")
    wait_for(lambda: controller.counts().get("rejected:identity", 0) >= 3, 60,
             "the impostor's frames to be refused")
    alpha.send(op="events", count=1, prefix="real")
    wait_for(lambda: alpha.link_status()["pending_events"] == 0, 60, "alpha's events acked")
    events = controller.json("events", "--agent", "alpha", "--limit", "1000")
    job_ids = {e["job_id"] for e in events if e["job_id"]}
    assert job_ids == {"real-0"}
    record = next(a for a in controller.json("agents") if a["name"] == "alpha")
    assert record["key_name"] == "alpha"
    assert impostor.link_status()["pending_events"] == 15  # never acknowledged


def test_probe_controller_for_agent_check(short_tmp: Path, cleanup: list) -> None:
    from morag_fleet.agent.publisher import probe_controller
    from morag_fleet.settings import AgentSettings

    keys = make_keys(short_tmp, "controller", "good", "stranger")
    controller = curve_controller(short_tmp, keys, ("good",))
    cleanup.append(controller.start())

    def settings(name: str) -> AgentSettings:
        return AgentSettings(worker_id=name, controller=controller.endpoint,
                             agent_key_file=str(keys[name][1]),
                             controller_public_key=str(keys["controller"][0]))

    ok, message = probe_controller(settings("good"), timeout=30)
    assert ok, message
    ok, message = probe_controller(settings("stranger"), timeout=30)
    assert not ok and "refused" in message
    ok, message = probe_controller(AgentSettings(worker_id="x", controller=controller.endpoint),
                                   timeout=5)
    assert not ok and "agent_key_file" in message
    assert controller.agent("good") is None  # a probe leaves no trace in the fleet state
