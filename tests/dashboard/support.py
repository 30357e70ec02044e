"""A controller with its dashboard, the token file, and a headless Chromium from the system's
packages driven through Selenium (no browser is downloaded)."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import requests

from tests.controller.fleet import ControllerProc
from tests.support.process import REPO_ROOT, free_port, wait_for

ARTIFACTS = Path(os.environ.get("MORAG_TEST_ARTIFACTS", REPO_ROOT / "build" / "test-artifacts")
                 ) / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def write_token(path: Path, mode: int = 0o600) -> str:
    token = secrets.token_hex(24)
    path.write_text(token + "\n")
    path.chmod(mode)
    return token


class WebController(ControllerProc):
    """A controller process with `--http-port` (and whatever else `web_args` adds)."""

    def __init__(self, base: Path, web_args: tuple[str, ...] = (), plaintext: bool = True,
                 extra: tuple[str, ...] = ()) -> None:
        self.http_port = free_port()
        super().__init__(base, plaintext=plaintext,
                         extra=("--http-port", str(self.http_port), *web_args, *extra))
        self.prefix = ""
        for i, arg in enumerate(web_args):
            if arg == "--url-prefix":
                self.prefix = "/" + web_args[i + 1].strip("/")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}{self.prefix}"

    def start(self) -> WebController:
        super().start()
        wait_for(self._serves, 30, "the dashboard")
        return self

    def _serves(self) -> bool:
        try:
            return requests.get(self.url + "/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def chromium() -> Any:
    """Headless Chromium through chromedriver, both from Debian's packages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            raise RuntimeError(f"{path} is missing: run .ci/bootstrap (it installs Debian's "
                               "chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def screenshot(driver: Any, name: str, docs: bool = True) -> Path:
    """The whole page as a PNG under the test artifacts (and, with MORAG_DOCS_SCREENSHOTS set,
    under docs/img for the docs page)."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}})
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    if docs and os.environ.get("MORAG_DOCS_SCREENSHOTS"):
        target = REPO_ROOT / "docs" / "img" / f"dashboard-{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return path
