"""The shipped Prometheus rules and Grafana dashboard: promtool checks and rule unit tests, every
alert tested and documented, and every metric they name exported by a real controller."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.controller.fleet import ControllerProc
from tests.monitoring.promql import exported_names, metric_names
from tests.support.process import REPO_ROOT, free_port

MONITORING = REPO_ROOT / "monitoring"
RULES = sorted((MONITORING / "prometheus").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "morag-fleet-dashboard.json"
ALERTS_DOC = REPO_ROOT / "docs" / "alerts.md"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run .ci/bootstrap (Debian package prometheus)"
    return path


def rules() -> list[dict]:
    found = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):  # label_values(METRIC, label): the metric is what counts
            match = re.match(r"label_values\((\w+)", query["query"])
            assert match, f"unexpected variable query {query}"
            exprs.append(match[1])
    return exprs


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", *map(str, RULES)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = subprocess.run([promtool(), "test", "rules", *map(str, RULE_TESTS)],
                            capture_output=True, text=True, timeout=120, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) - firing == set()
    assert set(alerts()) - quiet == set()


def test_every_alert_has_a_runbook_section() -> None:
    doc = ALERTS_DOC.read_text()
    headings = {line[3:].strip() for line in doc.splitlines() if line.startswith("### ")}
    for name, rule in alerts().items():
        assert name in headings, f"{name}: no '### {name}' section in docs/alerts.md"
        assert rule["annotations"]["runbook_url"] == f"docs/alerts.md#{name.lower()}"
        section = doc.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
        for part in ("What it means", "What to do"):
            assert part in section, f"{name}: the runbook lacks '{part}'"


def test_the_dashboard_is_importable_and_uses_the_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in names
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    """The names a real controller's /metrics page exports."""
    base = Path(tempfile.mkdtemp(prefix="mfm-"))  # short: the control socket path must fit
    port = free_port()
    controller = ControllerProc(base, extra=("--metrics-port", str(port), "--metrics-addr",
                                             "127.0.0.1")).start()
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    finally:
        controller.stop()
        shutil.rmtree(base, ignore_errors=True)
    yield exported_names(text)


def test_rules_name_only_metrics_the_controller_exports(exported: set[str]) -> None:
    known = exported | recorded()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_the_dashboard_names_only_metrics_the_controller_exports(exported: set[str]) -> None:
    """Raw metrics only: the dashboard works without the recording rules loaded."""
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        assert metric_names(expr), expr
        unknown = metric_names(expr) - exported
        assert not unknown, f"{expr}: {unknown}"


def test_the_name_check_catches_a_misspelt_metric(exported: set[str]) -> None:
    """The check itself: a typo or a name the controller never exported is found."""
    expr = 'sum by (state) (morag_fleet_agent{state="lost"}) / on () morag_fleet_slots'
    assert metric_names(expr) - exported == {"morag_fleet_agent"}
    assert metric_names('histogram_quantile(0.9, rate(x_bucket{a="b"}[5m]))') == {"x_bucket"}
