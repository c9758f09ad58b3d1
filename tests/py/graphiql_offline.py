"""Loads Stakegraph's GraphiQL in headless Chromium with every host but 127.0.0.1 unreachable, runs a query in it and
prints one JSON line: the result pane's text, every resource the page loaded, and the browser's console messages.

Usage: graphiql_offline.py BASE_URL QUERY HEADERS_JSON [SCREENSHOT.png]

HEADERS_JSON goes into GraphiQL's headers editor (`{"Authorization": "Bearer <key>"}`), as a user types it.

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`), Selenium from PyPI;
tests/it/graphiql.rs runs this against a real server and checks what it prints.
"""

import json
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    base, query, headers = sys.argv[1], sys.argv[2], sys.argv[3]
    screenshot = sys.argv[4] if len(sys.argv) > 4 else None
    profile = tempfile.mkdtemp(prefix="stakegraph-chromium-")
    options = webdriver.ChromeOptions()
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # What an offline user sees: no name resolves but the service's own address.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1400,860",
    ]:
        options.add_argument(argument)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror")))
        driver.execute_script(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(arguments[0]);", query
        )
        # The headers tab is open (the page asks for it): its editor is the tools' one not hidden.
        typed = driver.execute_script(
            """const tool = document.querySelector('.graphiql-editor-tool[aria-label="Headers"]');
               const editors = tool ? tool.querySelectorAll('.graphiql-editor:not(.hidden) .CodeMirror') : [];
               if (editors.length !== 1) return editors.length;
               editors[0].CodeMirror.setValue(arguments[0]);
               return 1;""",
            headers,
        )
        if typed != 1:
            raise SystemExit(f"expected the headers tab open with one editor, found {typed} editors")
        driver.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
        result_text = "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"
        wait.until(lambda driver: driver.execute_script(f"return {result_text};").strip().startswith("{"))
        result = driver.execute_script(f"return {result_text};")
        if screenshot:
            driver.save_screenshot(screenshot)
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map((entry) => entry.name);"
        )
        console = [entry["message"] for entry in driver.get_log("browser")]
        print(json.dumps({"result": json.loads(result), "resources": resources, "page": driver.current_url, "console": console}))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
