"""Real quadmesh processes for the operator's-view tests."""

import os
import socket
import subprocess
import tempfile
import time

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

BINARY = os.environ.get("QUADMESH_BIN", "")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "ui")


def free_ports(n):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65000:
            continue
        try:
            for i in range(n):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue


@pytest.fixture(scope="module")
def local_cluster():
    """`quadmesh local-cluster`: controlling and two copies; yields (port, password)."""
    data = tempfile.mkdtemp(prefix="quadmesh-ui-")
    port = free_ports(3)
    process = subprocess.Popen([BINARY, "local-cluster", "--data-dir", data, "--port", str(port)],
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, QUADMESH_LOG="warn"))
    deadline = time.time() + 60
    for line in process.stdout:
        if "Ctrl-C" in line:
            break
        if time.time() > deadline:
            raise RuntimeError("local-cluster did not become ready")
    password = open(os.path.join(data, "local-cluster-password")).read().strip()
    yield port, password
    process.send_signal(2)
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that keeps its console (CSP violations and script errors land
    there) and may download into a temporary folder."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.downloads = tempfile.mkdtemp(prefix="quadmesh-ui-downloads-")
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": driver.downloads})
    yield driver
    driver.quit()


def console_errors(driver, allowed=()):
    """The browser console's errors since the last call, less the expected refusals
    (`allowed`: substrings, e.g. a 400 the test asked for)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def type_query(driver, text):
    """Replaces the SPARQL editor's text by typing it, as a user at the keyboard does."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.CSS_SELECTOR, ".CodeMirror").click()
    (ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
     .send_keys(Keys.BACKSPACE).send_keys(text).perform())


def editor_text(driver):
    return driver.execute_script("return document.getElementById('repository').editor.getValue()")
