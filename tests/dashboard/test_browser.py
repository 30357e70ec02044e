"""The dashboard in a real headless Chromium against a running controller (CURVE), two real
agents and the reference job server: what operators see and do from the pages."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.controller.fleet import fleet_cli
from tests.dashboard.support import (
    ARTIFACTS,
    WebController,
    chromium,
    screenshot,
    write_token,
)
from tests.support.agent_proc import SCRIPTED, AgentProcess, wait_until
from tests.support.jobserver import JobServer, running_jobserver

AGENTS = ("fleet-a", "fleet-b")
NOTE = "driver update, back at 14:00"
ABSENT = "tests.support.no_such_module:Converter"


@dataclass
class Fleet:
    server: JobServer
    controller: WebController
    agents: dict[str, AgentProcess]
    token: str
    base: Path

    def upload(self, text: str, name: str) -> str:
        path = self.base / "docs" / f"{name}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{text}\n{name}\n")
        return self.server.upload(path, "document")

    def state(self, agent: str) -> str | None:
        row = self.controller.agent(agent)
        return row["state"] if row else None


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="mfd-"))  # short: the control socket's path is bounded
    keys, authorized = base / "keys", base / "authorized"
    authorized.mkdir()
    for name in AGENTS:
        assert fleet_cli("keys", "--dir", str(keys), "--name", name).returncode == 0
        shutil.copy(keys / f"{name}.key", authorized / f"{name}.key")
    token = write_token(base / "token")
    controller = WebController(base, ("--dashboard-token-file", str(base / "token")),
                               plaintext=False, extra=("--authorized-keys", str(authorized)))
    controller.start()
    agents: dict[str, AgentProcess] = {}
    try:
        with running_jobserver(base / "server") as server:
            for name in AGENTS:
                agents[name] = AgentProcess(
                    base, server.url, name, slots=2, content_types=("document", "web"),
                    # web's converter cannot load here: the agent page says why
                    converters={"document": SCRIPTED, "web": ABSENT},
                    controller=controller.endpoint, heartbeat_interval=1,
                    controller_public_key=str(controller.state_dir / "controller.key"),
                    agent_key_file=str(keys / f"{name}.key_secret")).start()
            wait_until(lambda: all(controller.agent(n) for n in AGENTS), 60, "agents known")
            yield Fleet(server, controller, agents, token, base)
            for agent in agents.values():
                agent.stop()
    finally:
        for agent in agents.values():
            if agent.alive:
                agent.kill()
        controller.stop()
        assert token not in controller.log_text()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, timeout: float = 60, what: str = "the page") -> Any:
    """The condition's first truthy value; on a timeout the page's HTML is kept as an
    artifact (wait-failed.html) to show what the browser had instead."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
            lambda d: condition(d), f"timed out waiting for {what}")
    except TimeoutException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "wait-failed.html").write_text(driver.page_source)
        raise


def css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def mark_page(driver: Any) -> None:
    """A flag that a reload would wipe: the page must change by itself."""
    driver.execute_script("window.__stillTheSamePage = true;")


def same_page(driver: Any) -> bool:
    return driver.execute_script("return window.__stillTheSamePage === true;")


def sign_in(driver: Any, fleet: Fleet) -> None:
    driver.get(fleet.controller.url + "/login")
    if css(driver, ".who form button"):  # signed in already
        return
    css(driver, "form.login input[name=token]")[0].send_keys(fleet.token)
    css(driver, "form.login button")[0].click()
    wait(driver, lambda d: css(d, ".who form button"), 30, "signed in")


def test_fleet_page_shows_both_agents_live(fleet: Fleet, browser: Any) -> None:
    browser.get(fleet.controller.url + "/")
    for name in AGENTS:
        wait(browser, lambda d, n=name: css(d, f'tr[data-agent="{n}"][data-state="idle"]'), 60,
             f"{name} idle in the table")
    assert css(browser, '[data-count="online"] .n')[0].text == "2"
    wait(browser, lambda d: css(d, '#live-status[data-mode="live"]'), 30, "the live stream")
    screenshot(browser, "fleet")


def test_polling_takes_over_where_event_source_is_missing(fleet: Fleet, browser: Any) -> None:
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                      {"source": "delete window.EventSource;"})
    try:
        browser.get(fleet.controller.url + "/")
        wait(browser, lambda d: css(d, '#live-status[data-mode="live (polling)"]'), 30,
             "polling")
        stamp = browser.find_element(By.TAG_NAME, "body").get_attribute("data-updated")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(
            "data-updated") != stamp, 30, "a second poll")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                {"identifier": script["identifier"]})


def test_a_queued_job_shows_its_progress_then_finishes(fleet: Fleet, browser: Any) -> None:
    browser.get(fleet.controller.url + "/")
    wait(browser, lambda d: css(d, '#live-status[data-mode="live"]'), 30, "the live stream")
    mark_page(browser)
    job_id = fleet.upload("sleep 10", "progress")
    bar = f'div.job[data-job="{job_id}"] progress'
    wait(browser, lambda d: css(d, bar), 60, "the job in its agent's slot")
    wait(browser, lambda d: css(d, bar) and float(css(d, bar)[0].get_attribute("value")) >= 0.2,
         30, "the progress bar moving")
    screenshot(browser, "fleet-busy")
    wait(browser, lambda d: not css(d, f'div.job[data-job="{job_id}"]'), 60, "the job gone")
    assert same_page(browser)
    assert fleet.server.status(job_id)["status"] == "completed"
    browser.get(fleet.controller.url + "/jobs")
    row = f'tr[data-job="{job_id}"][data-state="completed"]'
    wait(browser, lambda d: (css(d, row) or d.refresh()), 30, "the job completed on /jobs")
    convert = css(browser, row + " td")[7].text
    assert convert.endswith("s") and float(convert[:-1]) >= 9, convert
    screenshot(browser, "jobs")
    css(browser, row + " td a")[0].click()
    events = [td.text for td in css(browser, "table.timeline tbody tr td:nth-child(3)")]
    assert events[0] == "claimed" and events[-1] == "completed", events
    assert any(name.startswith("converting") for name in events), events
    screenshot(browser, "job")


def test_drain_with_a_note_from_the_page_stops_claims(fleet: Fleet, browser: Any) -> None:
    sign_in(browser, fleet)
    browser.get(fleet.controller.url + "/agent/fleet-a")
    web = css(browser, 'table.converters tr[data-content-type="web"]')[0].text
    assert "no" in web and "converter unavailable: ModuleNotFoundError" in web, web
    css(browser, "form.drain input[name=note]")[0].send_keys(NOTE)
    css(browser, "form.drain input[name=until]")[0].send_keys("2h")
    css(browser, "form.drain button")[0].click()
    result = wait(browser, lambda d: css(d, "#result"), 30, "the drain answer")[0].text
    assert "Drain sent to fleet-a" in result, result
    wait_until(lambda: fleet.state("fleet-a") == "paused", 30, "fleet-a paused")
    status = fleet.controller.cli("status")
    assert status.returncode == 0 and NOTE in status.stdout, status.stdout
    ids = [fleet.upload("sleep 0.3", f"drained-{i}") for i in range(4)]
    wait_until(lambda: all(fleet.server.status(i)["status"] == "completed" for i in ids), 90,
               "jobs completed")
    assert {fleet.server.status(i)["worker_id"] for i in ids} == {"fleet-b"}
    browser.get(fleet.controller.url + "/agent/fleet-a")
    wait(browser, lambda d: NOTE in d.find_element(By.ID, "agent-live").text, 30, "the note")
    screenshot(browser, "agent-drained")
    css(browser, "form.resume button")[0].click()
    assert "Resume sent" in wait(browser, lambda d: css(d, "#result"), 30, "resumed")[0].text
    wait_until(lambda: fleet.state("fleet-a") == "idle", 30, "fleet-a claiming again")


def test_cancel_a_long_conversion_from_the_page(fleet: Fleet, browser: Any) -> None:
    sign_in(browser, fleet)
    job_id = fleet.upload("sleep 300", "long")
    wait_until(lambda: any(j["job_id"] == job_id and j.get("phase") == "converting"
                           for j in fleet.controller.json("jobs")), 60, "the job converting")
    holder = fleet.server.status(job_id)["worker_id"]
    browser.get(fleet.controller.url + f"/job/{job_id}")
    css(browser, "form.danger input[name=note]")[0].send_keys("wrong file")
    screenshot(browser, "job-running")
    css(browser, "form.danger button")[0].click()
    result = wait(browser, lambda d: css(d, "#result"), 60, "the cancel answer")[0].text
    assert "Cancel sent" in result, result
    wait_until(lambda: fleet.server.status(job_id)["status"] == "failed", 60, "the job failed")
    answer = json.dumps(fleet.server.result(job_id))
    assert "cancelled by operator" in answer and "wrong file" in answer, answer
    wait_until(lambda: failed_events(fleet, job_id) >= 1, 30, "the failure recorded")
    assert failed_events(fleet, job_id) == 1
    # cancelling it again (a second operator, a stale page): a clear answer, nothing sent
    again = requests.post(fleet.controller.url + "/action/cancel", data={"job": job_id},
                          headers={"Authorization": f"Bearer {fleet.token}"}, timeout=30)
    assert again.status_code == 409 and "ended already" in again.json()["message"], again.text
    assert fleet.agents[holder].alive and fleet.state(holder) in ("idle", "busy")
    again = fleet.upload("plain text after a cancel", "after-cancel")
    wait_until(lambda: fleet.server.status(again)["status"] == "completed", 60, "next job")
    browser.get(fleet.controller.url + "/failures")
    wait(browser, lambda d: "cancelled by operator" in d.find_element(By.ID, "failures").text,
         10, "the cancel on the failures page")
    screenshot(browser, "failures")
    assert failed_events(fleet, job_id) == 1


def failed_events(fleet: Fleet, job_id: str) -> int:
    events = fleet.controller.json("events", "--job", job_id, "--limit", "1000")
    return sum(1 for e in events if e["name"] == "failed")


def test_a_killed_agent_turns_lost_without_a_reload(fleet: Fleet, browser: Any) -> None:
    browser.get(fleet.controller.url + "/")
    wait(browser, lambda d: css(d, '#live-status[data-mode="live"]'), 30, "the live stream")
    mark_page(browser)
    fleet.agents["fleet-b"].send(signal.SIGKILL)
    wait(browser, lambda d: css(d, 'tr[data-agent="fleet-b"][data-state="lost"]'), 30,
         "fleet-b lost on the page")
    assert same_page(browser)
    assert css(browser, '[data-count="lost"] .n')[0].text == "1"
    screenshot(browser, "fleet-lost")
