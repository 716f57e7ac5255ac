"""The web view in a real browser: headless Chromium (Debian's ``chromium``, driven by Selenium through
``chromium-driver``) against ``ramanedge listen --web`` on the emulated spectrometer. CI installs both
(.ci/run); elsewhere the test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the web view needs aiohttp (pip install -e '.[web]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip install -e '.[test]')")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
    reason="no Chromium here: apt-get install chromium chromium-driver (.ci/run does)",
)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line_with(stream, text: str, timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = stream.readline()
        if text in line:
            return line.strip()
    raise AssertionError(f"no line with {text!r}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def browser(tmp_path: Path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=480,1100",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait_for(condition, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def test_the_live_page_in_chromium(edge_bundle, tmp_path):
    from selenium.webdriver.common.by import By

    emulator = _start(["emulate", "--model", str(edge_bundle), "--interval", "0.5"])
    listen = None
    driver = None
    try:
        port = emulator.stdout.readline().strip()
        listen = _start(["listen", port, "--model", str(edge_bundle), "--json", "--web", "127.0.0.1:0", "--library", str(tmp_path / "library")])
        url = _line_with(listen.stderr, "web view: ").split("web view: ", 1)[1].split()[0]
        base = url.split("/?token=")[0]
        driver = browser(tmp_path)
        driver.get(base + "/")
        assert "401" in driver.find_element(By.TAG_NAME, "body").text  # no token: nothing but 401
        driver.get(url)
        # read in one go in the page: a live update may replace the rows between two WebDriver calls
        rows = _wait_for(lambda: driver.execute_script("return [...document.querySelectorAll('#top tr')].map(r => r.textContent)"))
        assert len(rows) == 3 and all("%" in row for row in rows)  # top-3 with their confidences
        assert _wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#plot polyline"))  # the spectrum, drawn
        assert _wait_for(lambda: "frames ok" in driver.execute_script("return document.getElementById('counts').textContent"))
        history = "return document.querySelectorAll('#history li').length"
        first = driver.execute_script(history)
        _wait_for(lambda: driver.execute_script(history) >= first + 2)  # updates live
        # every resource came from the device itself: nothing fetched elsewhere
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(name.startswith(base) for name in resources), resources
        driver.save_screenshot(str(tmp_path / "web_view.png"))
        if os.environ.get("RAMANEDGE_SCREENSHOT"):  # docs/web_view.png is made this way (docs/usage.md)
            driver.save_screenshot(os.environ["RAMANEDGE_SCREENSHOT"])
        # the add button: the spectrum shown joins the user library under the typed name
        driver.find_element(By.ID, "name").send_keys("Field quartz 7")
        driver.find_element(By.ID, "add-button").click()
        added = _wait_for(lambda: driver.execute_script("return document.getElementById('added').textContent"))
        assert added.startswith("added U0001: Field quartz 7"), added
        from edge.user_library import UserLibrary

        assert [e.mineral for e in UserLibrary(tmp_path / "library").entries] == ["Field quartz 7"]
    finally:
        if driver is not None:
            driver.quit()
        for process in (listen, emulator):
            if process is not None:
                _stop(process)
