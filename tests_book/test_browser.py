"""The built site, as a reader sees it: every page opened in headless Chromium, offline.

Run after the site build (`make browser`, part of `make test`). The pages are served from
``_build/html`` on 127.0.0.1 and the browser resolves no other host, so a formula that needs a
CDN, or a figure missing from the build, fails here. For every page in ``_toc.yml``:

* formulas are typeset by MathJax (no raw ``\\(`` ``\\[`` or ``$$`` left in the prose, every
  math element rendered);
* every image has loaded, and every chapter that draws figures shows them;
* the browser console has no errors;
* a chapter offers its ``.ipynb`` for download, and the file is served;
* no glued number is printed with more digits than a reader can use (e.g. 0.3981234567).

Needs Debian's ``chromium`` and ``chromium-driver`` (`.ci/run` installs them); elsewhere the
test is skipped with a message, unless ``CI`` is set, where a missing browser is a failure.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest

from _book import ROOT, toc_pages

HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


PAGES = toc_pages()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML} has no built site: run `make site` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        msg = ("Chromium and chromedriver are needed for the browser test: "
               "`apt-get install chromium chromium-driver` (Debian)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900",
                # offline, as a learner on a train: only the local server resolves
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const finish = () => done(true);
const deadline = Date.now() + 20000;   // MathJax that never loads is reported by the checks below
if (!window.MathJax) { done(false); return; }
const wait = () => {
  if (window.MathJax.startup && window.MathJax.startup.promise) {
    window.MathJax.startup.promise.then(finish, finish);
  } else if (Date.now() > deadline) { done(false); } else { setTimeout(wait, 50); }
};
wait();
"""

PAGE_FACTS = """
const article = document.querySelector('main') || document.body;
const clone = article.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, mjx-container, .cell_output, .output')
     .forEach(e => e.remove());
const prose = [...article.querySelectorAll('p, li, td, th, dd')]
  .filter(e => !e.closest('pre, .cell_output, .output, .highlight'))
  .map(e => e.innerText);
const imgs = [...article.querySelectorAll('img')].map(i => ({
  src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
const maths = [...article.querySelectorAll('span.math, div.math')];
return {
  text: clone.innerText,
  prose: prose,
  images: imgs,
  math_total: maths.length,
  math_rendered: maths.filter(m => m.querySelector('mjx-container')).length,
  downloads: [...document.querySelectorAll('a[href$=".ipynb"]')].map(a => a.href),
};
"""

RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")
LONG_NUMBER = re.compile(r"(?<![\w./])\d+\.\d{7,}(?![\w])")  # not DOIs (10.1145/3109859.3109912)


def _wait_until_images_settle(driver) -> None:
    driver.execute_async_script("""
      const done = arguments[arguments.length - 1];
      Promise.all([...document.images].map(i => i.complete ? null :
        new Promise(r => { i.onload = i.onerror = r; }))).then(() => done(true));
    """)


@pytest.mark.parametrize("page", PAGES)
def test_page_as_a_reader_sees_it(page, server, browser):
    html_path = HTML / f"{page}.html"
    assert html_path.is_file(), f"{page} is in _toc.yml but {html_path} was not built"
    browser.get_log("browser")  # drop messages of earlier pages
    browser.get(f"{server}/{page}.html")
    browser.execute_async_script(WAIT_FOR_MATHJAX)
    _wait_until_images_settle(browser)
    facts = browser.execute_script(PAGE_FACTS)
    problems = []

    raw = RAW_MATH.findall(facts["text"])
    if raw:
        problems.append(f"untypeset math delimiters in the prose: {raw[:5]}")
    if facts["math_rendered"] != facts["math_total"]:
        problems.append(f"MathJax typeset {facts['math_rendered']} of {facts['math_total']} formulas")

    broken = [i["src"] for i in facts["images"] if not i["ok"]]
    if broken:
        problems.append(f"images that did not load: {broken[:5]}")

    source = ROOT / f"{page}.ipynb"
    if source.is_file():
        nb = json.loads(source.read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        draws = re.search(r"\bplt\.(show|subplots|figure)\(|\.plot\(", code) is not None
        if draws and not facts["images"]:
            problems.append("the chapter draws figures but the page shows none")
        ipynb = [u for u in facts["downloads"] if u.endswith(f"{Path(page).name}.ipynb")]
        if not ipynb:
            problems.append("no .ipynb download link")
        else:
            with urllib.request.urlopen(ipynb[0], timeout=30) as r:
                if r.status != 200 or not r.read(200).lstrip().startswith(b"{"):
                    problems.append(f"the .ipynb download {ipynb[0]} is not served")

    long_numbers = [m for p in facts["prose"] for m in LONG_NUMBER.findall(p)]
    if long_numbers:
        problems.append(f"numbers with 7+ decimals in the prose (format the glue): {long_numbers[:5]}")

    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        problems.append(f"browser console errors: {errors[:5]}")

    assert not problems, f"{page}:\n  " + "\n  ".join(problems)
