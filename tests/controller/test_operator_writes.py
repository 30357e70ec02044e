"""Who may act, and how a bad action is answered: the control socket is the controller account's
alone, and each write refuses what it cannot do with a sentence, changing nothing."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from morag_fleet.controller.control import ControlClient, ControlError
from tests.controller.fleet import ControllerProc


def test_the_control_socket_is_for_the_controller_account_only(short_tmp: Path,
                                                               cleanup: list) -> None:
    controller = ControllerProc(short_tmp).start()
    cleanup.append(controller)
    assert stat.S_IMODE(controller.state_dir.stat().st_mode) == 0o700
    sock = controller.state_dir / "control.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600


@pytest.fixture(scope="module")
def client() -> Iterator[ControlClient]:
    base = Path(tempfile.mkdtemp(prefix="mfw-"))  # short: the control socket path must fit
    controller = ControllerProc(base).start()
    yield ControlClient(controller.state_dir, timeout=10)
    controller.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(("command", "args", "message"), [
    ("drain", {"agent": "nobody"}, "unknown agent 'nobody'"),
    ("drain", {"agent": "nobody", "until": "whenever"}, "use a time of day (14:00)"),
    ("drain", {"agent": "nobody", "note": 5}, "the note must be text"),
    ("resume", {}, "unknown agent None"),
    ("cancel", {}, "cancel needs a job id"),
    ("cancel", {"job": "j", "grace": -1}, "grace period must be 0..300 seconds"),
    ("cancel", {"job": "never-seen"}, "no agent runs job never-seen"),
    ("forget", {"agent": "nobody"}, "unknown agent 'nobody'"),
])
def test_a_write_that_cannot_be_done_is_refused_with_a_reason(
        client: ControlClient, command: str, args: dict, message: str) -> None:
    before = client.call("events", limit=1000)
    with pytest.raises(ControlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.call(command, **args)
    assert client.call("events", limit=1000) == before  # nothing recorded, nothing sent
