"""The web UI in a real headless Chromium, against a real 3-instance local cluster."""

import os
import tempfile

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import type_query


def wait(driver, condition, timeout=15):
    return WebDriverWait(driver, timeout).until(condition)


def test_sign_in_query_upload_and_manage_replication(browser, local_cluster, artifacts):
    port, password = local_cluster
    base = "http://127.0.0.1:%d" % port
    shot = lambda name: browser.save_screenshot(os.path.join(artifacts, name + ".png"))

    # Signing in: a wrong password is refused with a message, the right one admitted.
    browser.get(base + "/")
    wait(browser, EC.presence_of_element_located((By.ID, "sign-in")))
    browser.find_element(By.ID, "user").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys("wrong")
    browser.find_element(By.ID, "sign-in").click()
    assert "Wrong user or password" in wait(browser, EC.presence_of_element_located((By.ID, "error"))).text
    browser.find_element(By.ID, "user").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()
    table = wait(browser, EC.presence_of_element_located((By.ID, "repositories")))
    assert "demo" in table.text
    shot("1-repositories")

    # Upload a small Turtle file and see the size change.
    browser.get(base + "/ui/repositories/demo")
    size = wait(browser, EC.presence_of_element_located((By.ID, "size")))
    assert size.text == "0"
    turtle = tempfile.NamedTemporaryFile("w", suffix=".ttl", delete=False)
    turtle.write('@prefix ex: <http://example.org/> .\nex:a ex:name "Ada" .\nex:b ex:name "Grace" .\nex:c ex:name "Edsger" .\n')
    turtle.close()
    browser.find_element(By.ID, "file").send_keys(turtle.name)
    browser.find_element(By.ID, "upload").click()
    wait(browser, lambda d: d.find_element(By.ID, "size").text == "3")
    assert "Loaded 3 statements" in browser.find_element(By.ID, "message").text
    shot("2-uploaded")

    # Run a query and see its rows.
    type_query(browser, "SELECT ?name WHERE { ?s <http://example.org/name> ?name } ORDER BY ?name")
    browser.find_element(By.ID, "run").click()
    wait(browser, EC.presence_of_element_located((By.ID, "result-table")))
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#result-table tbody td")]
    assert cells == ["Ada", "Edsger", "Grace"]
    assert browser.find_element(By.ID, "row-count").text == "3 rows"
    shot("3-query")

    # A syntax error is shown, not swallowed.
    type_query(browser, "SELECT WHERE {")
    browser.find_element(By.ID, "run").click()
    assert "syntax" in wait(browser, lambda d: d.find_element(By.ID, "message").text).lower()

    # The replication page lists three instances; remove one through the UI.
    browser.get(base + "/ui/repositories/demo/replication")
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#instances tr.instance"))
    assert len(rows) == 3
    wait(browser, lambda d: all(("connected" in r.text or "self" in r.text)
                                for r in d.find_elements(By.CSS_SELECTOR, "#instances tr.instance")))
    shot("4-replication-three-instances")
    copy = [r for r in browser.find_elements(By.CSS_SELECTOR, "#instances tr.instance") if "copy-2" in r.text][0]
    copy.find_element(By.CSS_SELECTOR, "button.remove").click()
    browser.switch_to.alert.accept()
    notice = wait(browser, EC.presence_of_element_located((By.ID, "notice")))
    assert "Removed copy-2" in notice.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#instances tr.instance")) == 2
    shot("5-replication-two-instances")


def test_a_read_only_user_sees_no_controls_and_is_refused(browser, local_cluster, artifacts):
    import requests

    port, password = local_cluster
    base = "http://127.0.0.1:%d" % port
    admin = ("admin", password)
    for path in ["/users/viewer?password=viewer-secret", "/users/viewer/access?read=true&repository=demo"]:
        assert requests.put(base + path, auth=admin).status_code == 204

    browser.delete_all_cookies()
    browser.get(base + "/ui/login")
    wait(browser, EC.presence_of_element_located((By.ID, "sign-in")))
    browser.find_element(By.ID, "user").send_keys("viewer")
    browser.find_element(By.ID, "password").send_keys("viewer-secret")
    browser.find_element(By.ID, "sign-in").click()
    table = wait(browser, EC.presence_of_element_located((By.ID, "repositories")))
    assert "demo" in table.text
    assert browser.find_elements(By.CSS_SELECTOR, "button.danger") == []
    assert browser.find_elements(By.ID, "create") == []

    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.ID, "read-only")))
    assert browser.find_elements(By.ID, "upload-form") == []
    # Queries still run.
    type_query(browser, "SELECT ?s WHERE { ?s ?p ?o } LIMIT 1")
    browser.find_element(By.ID, "run").click()
    wait(browser, EC.presence_of_element_located((By.ID, "result-table")))
    browser.save_screenshot(os.path.join(artifacts, "6-read-only.png"))
    # A write sent from the page anyway (as a hand-made request would) gets 403.
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch("/repositories/demo/statements", {method: "POST",
              headers: {"Content-Type": "application/n-triples"},
              body: "<http://example.org/x> <http://example.org/y> <http://example.org/z> ."})
          .then((r) => done(r.status));"""
    )
    assert status == 403

    browser.get(base + "/ui/repositories/demo/replication")
    wait(browser, EC.presence_of_element_located((By.ID, "instances")))
    assert browser.find_elements(By.CSS_SELECTOR, "form[action$='/grow']") == []
    assert browser.find_elements(By.CSS_SELECTOR, "button.remove") == []
