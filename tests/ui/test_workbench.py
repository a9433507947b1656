"""The workbench (issue 29) in a real headless Chromium against a real local cluster:
the SPARQL editor at the keyboard, streamed results a thousand rows at a time, downloads,
graphs, history and saved queries, upload progress, the replication charts, and the
users, roles and namespaces pages — with no console error under the CSP."""

import csv
import os
import shutil
import tempfile
import time

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import console_errors, editor_text, type_query

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "ui", "docs")
EX = "http://example.org/"


def wait(driver, condition, timeout=20):
    # Pages that reload after a change leave stale elements behind for a moment (and
    # Chromium may say so as an inspector error): tried again until the timeout.
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException, WebDriverException]).until(condition)


def shot(driver, name):
    os.makedirs(DOCS, exist_ok=True)
    driver.save_screenshot(os.path.join(DOCS, name + ".png"))


def keys(driver, *sequence):
    ActionChains(driver).send_keys(*sequence).perform()


def ctrl(driver, key):
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()


def active(driver):
    return driver.switch_to.active_element


def sign_in(driver, base, user, password):
    driver.delete_all_cookies()
    driver.get(base + "/ui/login")
    wait(driver, EC.presence_of_element_located((By.ID, "sign-in")))
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, EC.presence_of_element_located((By.ID, "repositories")))


def ui_session(base, user, password):
    """A signed-in UI session outside the browser (the UI's routes take its cookie)."""
    session = requests.Session()
    signed_in = session.post(base + "/ui/login", data={"user": user, "password": password},
                             headers={"Origin": base}, allow_redirects=False)
    assert signed_in.status_code == 303 and "quadmesh_ui" in session.cookies
    return session


def no_console_errors(driver, allowed=()):
    errors = console_errors(driver, allowed)
    assert errors == [], errors


@pytest.fixture(scope="module")
def cluster(local_cluster):
    port, password = local_cluster
    base = "http://127.0.0.1:%d" % port
    admin = ("admin", password)
    people = ["ada", "grace", "edsger", "barbara", "donald", "alan", "john", "frances"]
    lines = []
    for i, a in enumerate(people):
        lines.append('<%s%s> <http://xmlns.com/foaf/0.1/name> "%s" .' % (EX, a, a.title()))
        for b in people[i + 1:i + 3]:
            lines.append("<%s%s> <http://xmlns.com/foaf/0.1/knows> <%s%s> ." % (EX, a, EX, b))
    for i in range(2500):
        lines.append('<%sitem%d> <%svalue> "%d"^^<http://www.w3.org/2001/XMLSchema#integer> .' % (EX, i, EX, i))
    r = requests.post(base + "/repositories/demo/statements", data="\n".join(lines).encode(),
                      headers={"Content-Type": "application/n-triples"}, auth=admin)
    assert r.status_code in (200, 204), r.text
    assert requests.put(base + "/repositories/demo/namespaces/ex", data=EX, auth=admin).status_code in (200, 204)
    return base, admin, port


def test_the_editor_at_the_keyboard(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    # Highlighting: the sample query's keywords are marked by the SPARQL mode.
    assert "SELECT" in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".cm-keyword")]

    # Reach the editor with Tab alone.
    browser.find_element(By.TAG_NAME, "body").click()
    for _ in range(20):
        if browser.execute_script("return !!document.activeElement.closest('.CodeMirror')"):
            break
        keys(browser, Keys.TAB)
    assert browser.execute_script("return !!document.activeElement.closest('.CodeMirror')")
    ctrl(browser, "a")
    keys(browser, Keys.BACKSPACE, "SEL")
    ctrl(browser, Keys.SPACE)
    hints = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".CodeMirror-hints")))
    assert "SELECT" in hints.text
    keys(browser, Keys.ENTER)
    assert editor_text(browser) == "SELECT"
    # A prefix of the repository completes, and its declaration is added.
    keys(browser, " ?name WHERE { ?p fo")
    ctrl(browser, Keys.SPACE)
    hints = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".CodeMirror-hints")))
    assert "foaf: http://xmlns.com/foaf/0.1/" in hints.text
    shot(browser, "editor-completion")
    keys(browser, Keys.ENTER, "name ?name } ORDER BY ?name")
    assert editor_text(browser) == ("PREFIX foaf: <http://xmlns.com/foaf/0.1/>\n"
                                    "SELECT ?name WHERE { ?p foaf:name ?name } ORDER BY ?name")
    # Ctrl-Enter runs it.
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "8 rows")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#result-table tbody td")]
    assert cells == sorted(["Ada", "Grace", "Edsger", "Barbara", "Donald", "Alan", "John", "Frances"])
    # Tab leaves the editor for the Run button.
    keys(browser, Keys.TAB)
    assert active(browser).get_attribute("id") == "run"

    # A parse error is marked where it is.
    type_query(browser, "SELECT ?s WHERE { ?s ?p ?o . ?s foo:bar ?x }")
    browser.find_element(By.ID, "run").click()
    message = wait(browser, lambda d: d.find_element(By.ID, "message").text)
    assert "Syntax error at line 1, column 40" in message and "Prefix not found" in message, message
    marked = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".parse-error"))
    assert [m.text for m in marked] == ["foo:bar"]
    shot(browser, "editor-parse-error")
    # The cursor is put there: editing clears the mark.
    keys(browser, "x")
    assert browser.find_elements(By.CSS_SELECTOR, ".parse-error, .parse-error-end") == []
    no_console_errors(browser, allowed=["status of 400"])


def test_results_come_a_thousand_rows_at_a_time_and_download_streamed(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    query = "SELECT ?item ?value WHERE { ?item ex:value ?value } ORDER BY ?value"
    type_query(browser, query)
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "First 1,000 rows (more to come)")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")) == 1000
    first = browser.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")[0]
    assert [c.text for c in first.find_elements(By.TAG_NAME, "td")] == ["ex:item0", "0"]
    shot(browser, "results-paged")

    # The table at the keyboard: one Tab stop, the arrow keys move the current cell.
    table = browser.find_element(By.ID, "result-table")
    browser.execute_script("arguments[0].focus()", browser.find_element(By.ID, "run"))
    for _ in range(10):
        keys(browser, Keys.TAB)
        if active(browser) == table:
            break
    assert active(browser) == table
    keys(browser, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_RIGHT)
    current = browser.find_element(By.CSS_SELECTOR, "#result-table td.current")
    assert current.text == "3"
    # More rows on demand, from the keyboard too.
    for _ in range(5):
        keys(browser, Keys.TAB)
        if active(browser).get_attribute("id") == "more-rows":
            break
    assert active(browser).get_attribute("id") == "more-rows"
    keys(browser, Keys.ENTER)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")) == 2000)
    browser.find_element(By.ID, "more-rows").click()
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "2,500 rows")
    assert not browser.find_element(By.ID, "more-rows").is_displayed()

    # Downloads: links to the query endpoint, which streams; the browser writes the file.
    link = browser.find_element(By.ID, "download-csv")
    href = link.get_attribute("href")
    assert "format=csv" in href
    streamed = requests.get(href, auth=admin, stream=True)
    assert streamed.headers.get("transfer-encoding") == "chunked"
    assert streamed.headers["content-type"].startswith("text/csv")
    streamed.close()
    link.click()
    path = os.path.join(browser.downloads, "demo-results.csv")
    wait(browser, lambda d: os.path.exists(path) and not os.path.exists(path + ".crdownload"))
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["item", "value"] and len(rows) == 2501
    assert rows[1] == [EX + "item0", "0"]
    assert browser.find_element(By.ID, "download-tsv").get_attribute("href").endswith("format=tsv")
    assert browser.find_element(By.ID, "download-json").get_attribute("href").endswith("format=json")
    no_console_errors(browser)


def metric(base, admin, name):
    for line in requests.get(base + "/metrics", auth=admin).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " not in /metrics")


def test_a_result_of_millions_of_rows_is_read_only_as_far_as_shown(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    abandoned = metric(base, admin, "quadmesh_result_streams_abandoned_total")
    # 2,500 × 2,500 = 6,250,000 rows.
    type_query(browser, "SELECT ?a ?b WHERE { ?a ex:value ?x . ?b ex:value ?y }")
    started = time.time()
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "First 1,000 rows (more to come)")
    assert time.time() - started < 10
    # The page still answers at once, and the server's stream waits for it.
    assert browser.execute_script("return 1 + 1") == 2
    assert metric(base, admin, "quadmesh_result_streams_running") >= 1
    # Another query lets the first stream go: the server stops producing it.
    type_query(browser, "ASK { ?s ?p ?o }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "boolean").text == "Answer: true")
    wait(browser, lambda d: metric(base, admin, "quadmesh_result_streams_abandoned_total") > abandoned)
    no_console_errors(browser)


def test_construct_results_as_a_graph_cut_when_large(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    type_query(browser, "CONSTRUCT { ?a foaf:knows ?b . ?a foaf:name ?n } WHERE { ?a foaf:knows ?b ; foaf:name ?n }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text.endswith("rows"))
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result-table th")]
    assert heads == ["subject", "predicate", "object"]
    assert browser.find_element(By.ID, "download-ntriples").get_attribute("href").endswith("format=ntriples")
    browser.find_element(By.ID, "view-graph").click()
    wait(browser, EC.visibility_of_element_located((By.ID, "graph-svg")))
    # 7 people know someone (13 edges); their 7 names are literal nodes; frances is known only.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph-svg .graph-node")) == 8 + 7
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph-svg .graph-edges line")) == 13 + 7
    assert "cut" not in browser.find_element(By.ID, "graph-note").text
    browser.execute_script("document.getElementById('view-graph').scrollIntoView()")
    shot(browser, "results-graph")

    type_query(browser, "CONSTRUCT { ?i ex:value ?v } WHERE { ?i ex:value ?v }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text.startswith("First 1,000"))
    browser.find_element(By.ID, "view-graph").click()
    note = wait(browser, EC.visibility_of_element_located((By.ID, "graph-note")))
    assert "cut at 300 nodes" in note.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph-svg .graph-node")) == 300

    # ASK answers in a line; DESCRIBE is drawn like CONSTRUCT.
    type_query(browser, "ASK { ex:ada foaf:knows ex:grace }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "boolean").text == "Answer: true")
    type_query(browser, "DESCRIBE ex:ada")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "3 rows")
    browser.find_element(By.ID, "view-graph").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#graph-svg .graph-node")) == 4)

    # An IRI of the results is described with Enter (or a click).
    type_query(browser, "SELECT ?who WHERE { ex:ada foaf:knows ?who } ORDER BY ?who")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "2 rows")
    browser.execute_script("document.getElementById('result-table').focus()")
    keys(browser, Keys.ENTER)
    wait(browser, lambda d: editor_text(d) == "DESCRIBE <http://example.org/edsger>")
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "3 rows")
    assert browser.find_elements(By.CSS_SELECTOR, "#result-table th")[0].text == "subject"

    # An update runs from the same editor.
    size = int(browser.find_element(By.ID, "size").text)
    type_query(browser, "INSERT DATA { ex:zed foaf:name \"Zed\" }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "message").text == "Update done.")
    wait(browser, lambda d: int(d.find_element(By.ID, "size").text) == size + 1)
    no_console_errors(browser)


def test_history_and_saved_queries(browser, cluster):
    base, admin, port = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    type_query(browser, "ASK { ex:ada foaf:knows ex:grace }")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "boolean").text == "Answer: true")
    type_query(browser, "DESCRIBE ex:ada")
    ctrl(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "row-count").text == "3 rows")
    # After a reload, the queries run are in this browser's history, newest first.
    browser.refresh()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    history = Select(browser.find_element(By.ID, "history"))
    texts = [o.text for o in history.options]
    assert texts[0].startswith("History (")
    assert texts[1].endswith("DESCRIBE ex:ada") and "ASK { ex:ada" in texts[2]
    # Chosen from the keyboard, an entry comes back into the editor.
    browser.find_element(By.ID, "history").send_keys(Keys.ARROW_DOWN)
    wait(browser, lambda d: editor_text(d) == "DESCRIBE ex:ada")

    type_query(browser, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
    browser.find_element(By.ID, "save-name").send_keys("count everything")
    browser.find_element(By.ID, "save").click()
    wait(browser, lambda d: "Saved the query" in d.find_element(By.ID, "message").text)
    wait(browser, lambda d: [o.text for o in Select(d.find_element(By.ID, "saved")).options][1:] == ["count everything"])
    shot(browser, "saved-queries")
    # Saved with the repository's metadata: a copy of the cluster has it too.
    copy = "http://127.0.0.1:%d" % (port + 1)
    session = ui_session(copy, *admin)
    deadline = time.time() + 20
    while True:
        got = session.get(copy + "/ui/repositories/demo/queries")
        if got.status_code == 200 and [q["name"] for q in got.json()] == ["count everything"]:
            break
        assert time.time() < deadline, (got.status_code, got.text)
        time.sleep(0.5)
    assert got.json()[0]["query"] == "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
    # Chosen again after a reload.
    browser.refresh()
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "saved")).options) == 2)
    type_query(browser, "ASK { ?s ?p ?o }")
    Select(browser.find_element(By.ID, "saved")).select_by_visible_text("count everything")
    assert editor_text(browser) == "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
    assert browser.find_element(By.ID, "save-name").get_attribute("value") == "count everything"
    # And deleted.
    browser.find_element(By.ID, "forget").click()
    browser.switch_to.alert.accept()
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "saved")).options) == 1)
    assert "Deleted the saved query count everything" in browser.find_element(By.ID, "message").text
    no_console_errors(browser)


def test_upload_shows_its_progress(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.ID, "upload-form")))
    big = tempfile.NamedTemporaryFile("w", suffix=".nt", delete=False)
    for i in range(60000):
        big.write('<%sbig%d> <%slabel> "a label long enough to make the file weigh several megabytes %d" .\n' % (EX, i, EX, i))
    big.close()
    size = os.path.getsize(big.name)
    assert size > 5_000_000
    browser.set_network_conditions(offline=False, latency=5, download_throughput=50_000_000,
                                   upload_throughput=1_500_000)
    try:
        browser.find_element(By.ID, "file").send_keys(big.name)
        browser.find_element(By.ID, "upload").click()
        progress = wait(browser, EC.visibility_of_element_located((By.ID, "upload-progress")))
        wait(browser, lambda d: 0 < float(progress.get_attribute("value")) < size)
        text = browser.find_element(By.ID, "upload-progress-text").text
        assert "Sending " in text and "%)" in text
        shot(browser, "upload-progress")
        wait(browser, lambda d: "Loaded 60000 statements" in d.find_element(By.ID, "message").text, timeout=90)
    finally:
        browser.delete_network_conditions()
    assert int(browser.find_element(By.ID, "upload-progress").get_attribute("data-events")) > 1
    no_console_errors(browser)


def test_replication_charts_refresh_live(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/repositories/demo/replication")
    charts = wait(browser, EC.presence_of_element_located((By.ID, "lag-chart")))
    assert charts
    before = int(browser.find_element(By.ID, "charts").get_attribute("data-count"))
    for i in range(20):
        requests.post(base + "/repositories/demo/statements",
                      data='<%sw%d> <%sp> "%d" .' % (EX, i, EX, i),
                      headers={"Content-Type": "application/n-triples"}, auth=admin)
        time.sleep(0.25)
    # Refreshed without a reload: more samples, and a line per peer and per counter.
    wait(browser, lambda d: int(d.find_element(By.ID, "charts").get_attribute("data-count")) >= max(before + 1, 3))
    lines = browser.find_elements(By.CSS_SELECTOR, "#lag-chart polyline.chart-line")
    assert sorted(l.get_attribute("data-series") for l in lines) == ["copy-1", "copy-2"]
    commits = browser.find_elements(By.CSS_SELECTOR, "#commits-chart polyline.chart-line")
    assert {l.get_attribute("data-series") for l in commits} == {"committed here", "applied from peers"}
    label = browser.find_element(By.ID, "commits-chart").get_attribute("aria-label")
    assert "committed here" in label
    shot(browser, "replication-charts")
    session = ui_session(base, *admin)
    read = lambda: session.get(base + "/ui/repositories/demo/replication/samples").json()
    assert read()["windowMs"] == 15 * 60 * 1000
    # The next sample counts every commit made above.
    wait(browser, lambda d: read()["samples"][-1]["committed"] >= 20, timeout=15)
    no_console_errors(browser)


def test_users_roles_and_namespaces_pages(browser, cluster):
    base, admin, _ = cluster
    sign_in(browser, base, "admin", admin[1])
    browser.get(base + "/ui/users")
    wait(browser, EC.presence_of_element_located((By.ID, "new-user")))
    browser.find_element(By.ID, "new-user-name").send_keys("reader")
    browser.find_element(By.ID, "new-user-password").send_keys("reader-secret")
    browser.find_element(By.ID, "create-user").click()
    wait(browser, lambda d: "reader" in d.find_element(By.ID, "users").text)
    assert browser.find_element(By.ID, "notice").text == "Created user reader."
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "#users tr.user") if "reader" in r.text][0]
    row.find_element(By.NAME, "repository").send_keys("demo")
    row.find_element(By.XPATH, ".//button[text()='Grant']").click()
    reader_row = lambda d: " ".join(r.text for r in d.find_elements(By.CSS_SELECTOR, "#users tr.user")
                                    if "reader" in r.text)
    # The page is drawn again: the reader's row then shows the grant.
    wait(browser, lambda d: "demo: read" in reader_row(d))
    assert requests.get(base + "/users/reader/access", auth=admin).json()[0]["repository"] == "demo"
    shot(browser, "users")

    browser.get(base + "/ui/roles")
    browser.find_element(By.ID, "new-role-name").send_keys("analysts")
    browser.find_element(By.ID, "create-role").click()
    wait(browser, lambda d: "analysts" in d.find_element(By.ID, "roles").text)
    assert "analysts" in requests.get(base + "/roles", auth=admin).json()

    browser.get(base + "/ui/repositories/demo/namespaces")
    browser.find_element(By.ID, "new-prefix").send_keys("schema")
    browser.find_element(By.ID, "new-namespace-iri").send_keys("https://schema.org/")
    browser.find_element(By.ID, "add-namespace").click()
    wait(browser, lambda d: "https://schema.org/" in d.find_element(By.ID, "namespaces").text)
    shot(browser, "namespaces")
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "#namespaces tr.namespace")
           if r.find_element(By.TAG_NAME, "td").text == "schema"][0]
    row.find_element(By.CSS_SELECTOR, "button.delete-namespace").click()
    wait(browser, lambda d: "https://schema.org/" not in d.find_element(By.ID, "namespaces").text)
    assert "rdfs" in browser.find_element(By.ID, "namespaces").text
    no_console_errors(browser)

    # The reader sees the same pages, without a control, and only its own account.
    sign_in(browser, base, "reader", "reader-secret")
    for path, table in [("/ui/users", "users"), ("/ui/roles", "roles"), ("/ui/repositories/demo/namespaces", "namespaces")]:
        browser.get(base + path)
        wait(browser, EC.presence_of_element_located((By.ID, table)))
        assert browser.find_elements(By.CSS_SELECTOR, "form[data-rest-method], button[data-rest-method]") == [], path
        assert browser.find_elements(By.ID, "read-only")
    browser.get(base + "/ui/users")
    assert [r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#users tr.user")] == ["reader"]
    assert "demo: read" in browser.find_element(By.ID, "users").text
    shot(browser, "users-read-only")
    browser.get(base + "/ui/repositories/demo")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")))
    assert browser.find_elements(By.ID, "save-form") == []
    assert browser.find_elements(By.ID, "upload-form") == []
    # A save sent anyway is refused.
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch("/ui/repositories/demo/queries", {method: "POST",
              headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "name=x&query=ASK{}"})
          .then((r) => done(r.status));""")
    assert status == 403
    no_console_errors(browser, allowed=["status of 403"])
