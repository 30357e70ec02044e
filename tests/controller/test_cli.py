"""The operator commands against a running controller with real publisher processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.controller.fleet import MAIN_MODULE, ControllerProc, PublisherProc, env, fleet_cli
from tests.support.process import REPO_ROOT, free_port, wait_for


def start_fleet(base: Path, cleanup: list, *extra: str) -> tuple[ControllerProc, PublisherProc,
                                                                  PublisherProc]:
    controller = ControllerProc(base, extra=extra)
    cleanup.append(controller.start())
    a1 = PublisherProc(base, "a1", controller.endpoint, interval=0.3)
    a2 = PublisherProc(base, "a2", controller.endpoint, interval=0.3)
    cleanup += [a1, a2]
    a1.send(op="events", count=2)
    a2.send(op="start_job", job_id="long-job", started_at=time.time() - 90)
    wait_for(lambda: (controller.agent("a1") or {}).get("done") == 2
             and (controller.agent("a2") or {}).get("active_jobs") == 1, 60, "the fleet")
    return controller, a1, a2


def test_status_jobs_events_agents_as_tables_and_json(short_tmp: Path, cleanup: list) -> None:
    controller, _, _ = start_fleet(short_tmp, cleanup)
    table = controller.cli("status").stdout.splitlines()
    assert table[0].split()[:4] == ["AGENT", "HOST", "STATE", "SLOTS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["a1"][1:7] == ["host-a1", "idle", "0/2", "0", "2", "0"]
    assert rows["a2"][1:5] == ["host-a2", "idle", "1/2", "1"]
    assert table[-1].split()[:2] == ["TOTAL", "2"]
    assert "2 up, 0 lost" in table[-1]

    data = controller.json("status")
    assert data["totals"] == {"agents": 2, "online": 2, "lost": 0, "slots_used": 1,
                              "slots_total": 4, "active_jobs": 1, "done": 2, "failed": 0,
                              "refused": 0}
    assert {a["agent"]: a["version"] for a in data["agents"]} == {"a1": "test-1.0",
                                                                  "a2": "test-1.0"}
    jobs = controller.json("jobs")
    assert [(j["job_id"], j["agent"], j["phase"]) for j in jobs] == [
        ("long-job", "a2", "converting")]
    assert jobs[0]["age"] >= 90
    jobs_table = controller.cli("jobs").stdout.splitlines()
    assert jobs_table[0].split() == ["JOB", "AGENT", "TYPE", "PHASE", "PROGRESS", "AGE"]
    assert jobs_table[1].split()[:5] == ["long-job", "a2", "document", "converting", "50%"]

    events = controller.json("events", "--agent", "a1")
    assert [(e["job_id"], e["name"]) for e in events if e["scope"] == "job"] == [
        ("job-0", "claimed"), ("job-0", "converting"), ("job-0", "completed"),
        ("job-1", "claimed"), ("job-1", "converting"), ("job-1", "completed")]
    events_table = controller.cli("events", "--agent", "a1").stdout.splitlines()
    assert events_table[0].split() == ["TIME", "AGENT", "EVENT", "JOB", "DETAILS"]
    assert any(line.split()[2:5] == ["a1", "completed", "job-1"] for line in events_table)
    assert all(line.split()[2] == "a1" for line in events_table[1:])

    agents = controller.json("agents")
    assert [a["name"] for a in agents] == ["a1", "a2"]
    assert agents[0]["host_stats"]["cpu_percent"] is not None
    assert controller.cli("agents").stdout.splitlines()[0].startswith("AGENT")


def test_events_follow_prints_new_events(short_tmp: Path, cleanup: list) -> None:
    controller, a1, _ = start_fleet(short_tmp, cleanup)
    follow = subprocess.Popen(
        [sys.executable, "-m", MAIN_MODULE, "events", "--follow", "--json", "--agent", "a1",
         "--state-dir", str(controller.state_dir)], cwd=REPO_ROOT, env=env(),
        stdout=subprocess.PIPE, text=True)
    try:
        a1.send(op="events", count=1, prefix="followed")
        seen = []
        while not any(e.get("job_id") == "followed-0" and e["name"] == "completed" for e in seen):
            line = follow.stdout.readline()  # type: ignore[union-attr]
            assert line, "events --follow ended early"
            seen.append(json.loads(line))
        assert all(e["agent"] == "a1" for e in seen)
    finally:
        follow.kill()
        follow.wait()


def test_drain_and_resume_reach_the_agent(short_tmp: Path, cleanup: list) -> None:
    controller, a1, _ = start_fleet(short_tmp, cleanup)
    result = controller.cli("drain", "a1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "drain sent to a1"
    assert a1.expect("command", timeout=60)["name"] == "drain"
    wait_for(lambda: controller.agent("a1")["state"] == "draining", 60, "a1 to report draining")
    assert controller.agent("a2")["state"] == "idle"
    assert controller.cli("resume", "a1").returncode == 0
    assert a1.expect("command", timeout=60)["name"] == "resume"
    wait_for(lambda: controller.agent("a1")["state"] == "idle", 60, "a1 to be idle again")
    commands = [e["body"]["command"] for e in controller.json("events", "--agent", "a1")
                if e["name"] == "command"]
    assert commands == ["drain", "resume"]

    unknown = controller.cli("drain", "nobody")
    assert unknown.returncode == 1
    assert "unknown agent 'nobody'" in unknown.stderr
    a1.close()
    wait_for(lambda: controller.agent("a1")["state"] == "offline", 60, "a1 offline after bye")
    gone = controller.cli("drain", "a1")
    assert gone.returncode == 1 and "offline" in gone.stderr


def test_commands_say_clearly_when_no_controller_runs(short_tmp: Path) -> None:
    for command in ("status", "jobs", "events", "agents"):
        result = fleet_cli(command, "--state-dir", str(short_tmp / "none"))
        assert result.returncode == 3
        assert "controller is not running" in result.stderr
        assert "Traceback" not in result.stderr
    # a stale socket left by a killed controller: a bounded wait, then the same clear answer
    stale = short_tmp / "stale"
    stale.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale / "control.sock"))
    result = fleet_cli("status", "--state-dir", str(stale), "--timeout", "1")
    assert result.returncode == 3
    assert "did not answer" in result.stderr or "not running" in result.stderr


def test_metrics_endpoint(short_tmp: Path, cleanup: list) -> None:
    port = free_port()
    start_fleet(short_tmp, cleanup, "--metrics-port", str(port),
                "--metrics-addr", "127.0.0.1")
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    assert 'morag_fleet_agents{state="idle"} 2.0' in text
    assert 'morag_fleet_jobs_total{content_type="document",outcome="completed"} 2.0' in text
    assert 'morag_fleet_job_duration_seconds_count{content_type="document"} 2.0' in text
    assert "morag_fleet_active_jobs 1.0" in text
    assert 'morag_fleet_frames_total{kind="heartbeat"}' in text
    assert "morag_fleet_outbox_results 0.0" in text
    assert "morag_fleet_outbox_depth{" not in text  # per agent only while it has a backlog
    assert "morag_fleet_slots_busy " in text


def test_systemd_readiness_and_clean_sigterm(short_tmp: Path) -> None:
    notify_path = short_tmp / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    state_dir = short_tmp / "ctl"
    proc = subprocess.Popen(
        [sys.executable, "-m", MAIN_MODULE, "controller", "--plaintext", "--bind",
         f"tcp://127.0.0.1:{free_port()}", "--state-dir", str(state_dir)],
        cwd=REPO_ROOT, env={**env(), "NOTIFY_SOCKET": str(notify_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = [listener.recv(4096).decode()]
        assert messages[0] == "READY=1"
        assert fleet_cli("status", "--state-dir", str(state_dir)).returncode == 0
        proc.terminate()
        assert proc.wait(60) == 0
        while True:
            message = listener.recv(4096).decode()
            messages.append(message)
            if message == "STOPPING=1":
                break
        assert not os.path.exists(state_dir / "control.sock") or fleet_cli(
            "status", "--state-dir", str(state_dir), "--timeout", "1").returncode == 3
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def test_part_entry_points_offer_only_their_own_commands(short_tmp: Path) -> None:
    """`python -m morag_fleet.controller` / `.jobserver` work where only that part is
    installed: each lists its own commands, none of the other part's, and runs them."""
    script = ("import sys, runpy\n"
              "sys.modules['morag_fleet.{other}.cli'] = None  # as if not installed\n"
              "sys.argv = ['x', *sys.argv[1:]]\n"
              "runpy.run_module('morag_fleet.{part}', run_name='__main__')\n")
    for part, other, own, foreign in (("controller", "jobserver", "status", "submit"),
                                      ("jobserver", "controller", "submit", "status")):
        code = script.format(part=part, other=other)
        listed = subprocess.run([sys.executable, "-c", code, "--help"], cwd=REPO_ROOT,
                                env=env(), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert own in listed.stdout and foreign not in listed.stdout
    answer = subprocess.run(
        [sys.executable, "-c", script.format(part="controller", other="jobserver"), "status",
         "--state-dir", str(short_tmp / "none")],
        cwd=REPO_ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert answer.returncode == 3 and "controller is not running" in answer.stderr
