"""A stopping agent leaves no process behind for the service manager to kill.

systemd (KillMode=mixed) SIGKILLs whatever is left in the unit once the agent exits. Here a
launcher process stands in for it: it is a child subreaper, so every process the agent leaves
behind is re-parented to it and shows up in its own waitpid(), deterministically."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.agent_proc import REPO_ROOT, SCRIPTED, AgentProcess

LAUNCHER = textwrap.dedent("""
    import ctypes, json, os, signal, subprocess, sys, time
    import psutil

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    config, log_path = sys.argv[1], sys.argv[2]
    with open(log_path, "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "morag_fleet.cli.agent_main", "run", "--config", config],
            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while b'"agent_started"' not in open(log_path, "rb").read():
        if agent.poll() is not None or time.monotonic() > deadline:
            print(json.dumps({"error": "agent did not start", "rc": agent.poll()}))
            sys.exit(1)
        time.sleep(0.2)
    trackers = [p.pid for p in psutil.Process(agent.pid).children(recursive=True)
                if "resource_tracker" in " ".join(p.cmdline())]
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(90)
    left = []
    end = time.monotonic() + 3  # a left-behind process exits on its own once its pipe closes
    while time.monotonic() < end:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            left.append(pid)
        else:
            time.sleep(0.05)
    print(json.dumps({"rc": rc, "trackers": trackers, "left": left}))
""")


def test_stop_reaps_the_resource_tracker(tmp_path: Path, jobserver) -> None:
    agent = AgentProcess(tmp_path / "agents", jobserver.url, slots=2,
                         converters={"document": SCRIPTED})
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    done = subprocess.run(
        [sys.executable, str(launcher), str(agent.config_path), str(agent.log_path)],
        capture_output=True, text=True, timeout=300, cwd=agent.dir,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stdout + done.stderr + agent.log_text()[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, agent.log_text()[-3000:]
    # the slots' start made multiprocessing start its tracker: the test saw the real thing
    assert len(report["trackers"]) == 1, report
    # and the agent reaped it itself: nothing was re-parented to the stand-in service manager
    assert report["left"] == [], report
