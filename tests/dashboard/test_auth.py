"""Who may change what through the dashboard: the token file's mode, read-only mode, every
write refused without the token or with a wrong one, and the token kept out of the log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.controller.fleet import fleet_cli
from tests.dashboard.support import WebController, write_token

WRITES = ("/action/drain", "/action/resume", "/action/cancel", "/logout")
FORM = {"agent": "a1", "job": "job-1", "note": "n", "csrf": "x"}


def test_a_token_file_others_can_read_is_refused_with_a_clear_error(short_tmp: Path) -> None:
    token_file = short_tmp / "token"
    write_token(token_file, 0o644)
    result = fleet_cli("controller", "--plaintext", "--bind", "tcp://127.0.0.1:0",
                       "--state-dir", str(short_tmp / "ctl"), "--http-port", "0",
                       "--dashboard-token-file", str(token_file), timeout=60)
    assert result.returncode == 2
    assert "mode 0644" in result.stderr and f"chmod 600 {token_file}" in result.stderr
    missing = fleet_cli("controller", "--plaintext", "--bind", "tcp://127.0.0.1:0",
                        "--state-dir", str(short_tmp / "ctl2"), "--http-port", "0",
                        "--dashboard-token-file", str(short_tmp / "nope"), timeout=60)
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_read_only_dashboard_says_so_shows_no_buttons_and_refuses_writes(
        short_tmp: Path, cleanup: list) -> None:
    controller = WebController(short_tmp)
    cleanup.append(controller)
    controller.start()
    for path in ("/", "/jobs", "/failures", "/login"):
        page = requests.get(controller.url + path, timeout=10)
        assert page.status_code == 200
        assert "Read-only" in page.text
        # filters are GET forms; nothing else on the page may have a button
        assert "<button" not in re.sub(r'<form method="get".*?</form>', "", page.text)
        assert 'method="post"' not in page.text
    for path in WRITES:
        answer = requests.post(controller.url + path, data=FORM, timeout=10)
        assert answer.status_code == 403, path
        assert "read-only" in answer.text
    assert requests.post(controller.url + "/login", data={"token": "x" * 32},
                         timeout=10).status_code == 403


def test_every_write_needs_the_token_and_the_token_never_reaches_the_log(
        short_tmp: Path, cleanup: list) -> None:
    token = write_token(short_tmp / "token")
    controller = WebController(short_tmp, ("--dashboard-token-file", str(short_tmp / "token"),
                                           "--log-level", "DEBUG"))
    cleanup.append(controller)
    controller.start()
    url = controller.url
    wrong = "0" * len(token)
    for path in WRITES:
        assert requests.post(url + path, data=FORM, timeout=10).status_code == 401, path
        assert requests.post(url + path, data=FORM, timeout=10,
                             headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        # the token itself in the form is not a way in either: only a session or the header
        assert requests.post(url + path, data={**FORM, "token": token, "csrf": token},
                             timeout=10).status_code == 401
        # no action is reachable through a GET
        assert requests.get(url + path, params=FORM, timeout=10).status_code == 404
    assert requests.post(url + "/login", data={"token": wrong}, timeout=10).status_code == 403

    browser = requests.Session()
    signed_in = browser.post(url + "/login", data={"token": token}, timeout=10)
    assert signed_in.status_code == 200 and "Sign out" in signed_in.text
    cookie = signed_in.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    csrf = re.search(r'name="csrf" value="([^"]+)"', signed_in.text).group(1)
    # a signed-in browser still needs the page's CSRF value, and a post from another site fails
    assert browser.post(url + "/action/drain", data={"agent": "a1"},
                        timeout=10).status_code == 403
    assert browser.post(url + "/action/drain", data={"agent": "a1", "csrf": csrf}, timeout=10,
                        headers={"Origin": "http://evil.example"}).status_code == 403
    # with both, the write reaches the controller, which answers for the unknown agent
    passed = browser.post(url + "/action/drain", data={"agent": "a1", "csrf": csrf}, timeout=10)
    assert passed.status_code == 409 and "unknown agent" in passed.text
    api = requests.post(url + "/action/cancel", data={"job": "job-1"}, timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409 and api.json()["ok"] is False
    # a token typed into a query string is not logged either
    requests.get(url + "/", params={"token": token}, timeout=10)
    assert browser.post(url + "/logout", data={"csrf": csrf}, timeout=10).status_code == 200
    assert browser.post(url + "/action/drain", data={"agent": "a1", "csrf": csrf},
                        timeout=10).status_code == 401
    controller.stop()
    log = controller.log_text()
    assert "http_write_refused" in log  # the log was written, and it says what was refused
    assert token not in log


@pytest.mark.parametrize("prefix", ["/fleet"])
def test_behind_a_proxy_prefix_links_carry_it_and_both_paths_answer(
        short_tmp: Path, cleanup: list, prefix: str) -> None:
    controller = WebController(short_tmp, ("--url-prefix", prefix))
    cleanup.append(controller)
    controller.start()
    page = requests.get(controller.url + "/", timeout=10).text
    assert f'href="{prefix}/jobs"' in page and f'src="{prefix}/static/dashboard.js"' in page
    assert f'data-live="{prefix}/live/fleet"' in page
    bare = f"http://127.0.0.1:{controller.http_port}"
    assert requests.get(bare + "/jobs", timeout=10).status_code == 200  # a proxy that strips it
    metrics = requests.get(bare + "/metrics", timeout=10)
    assert metrics.status_code == 200 and "morag_fleet_agents" in metrics.text
