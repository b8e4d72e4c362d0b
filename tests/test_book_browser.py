"""Build the book and look at every page in a real headless Chromium.

The build (``jupyter-book build . --warningiserror --keep-going``) goes to a temporary folder, so
this test never leaves a stale ``_build/``. Each page must load, every ``<img>`` must decode
(``naturalWidth > 0``), the console must stay free of SEVERE messages (which is also how a page
that tries to reach the internet shows up: nothing can be fetched here), and a full-page
screenshot goes to ``test-output/screenshots/``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``)
and ``selenium``; set ``CHROMIUM`` / ``CHROMEDRIVER`` for other locations.
"""

from __future__ import annotations

import base64
import html as html_lib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
BUILD_SECONDS = 120  # the budget for a build once the environment exists


def toc_pages() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


def jupyter_book() -> str:
    local = Path(sys.executable).parent / "jupyter-book"
    found = str(local) if local.is_file() else shutil.which("jupyter-book")
    if not found:
        pytest.fail("jupyter-book is not installed: pip install 'jupyter-book<2'")
    return found


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """A fresh build of the book in a temporary folder (warnings are errors)."""
    out = tmp_path_factory.mktemp("book")
    start = time.perf_counter()
    done = subprocess.run([jupyter_book(), "build", str(REPO), "--path-output", str(out), "--warningiserror",
                           "--keep-going"], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        pytest.fail(f"book build failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
    html = out / "_build" / "html"
    (html / ".build-seconds").write_text(f"{seconds:.1f}")
    return html


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).is_file():
            pytest.fail(f"{binary} not found: apt-get update && apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_build_is_quick_and_complete(html):
    assert float((html / ".build-seconds").read_text()) < BUILD_SECONDS
    for page in toc_pages():
        assert (html / f"{page}.html").is_file(), page
    assert (html / "index.html").is_file()


def _wait_loaded(driver, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        state = driver.execute_script(
            "return [document.readyState, Array.from(document.images).every(i => i.complete)]")
        if state == ["complete", True]:
            return
        time.sleep(0.2)
    raise AssertionError("page or images did not finish loading")


def _full_page_screenshot(driver, path: Path) -> None:
    """Lay the whole page out in one tall viewport (so sticky headers stay on top), then capture it."""
    driver.execute_script("window.scrollTo(0, 0)")
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
    metrics = {"width": width, "height": min(height, 30000), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.parametrize("page", toc_pages())
def test_page_loads_with_images_and_a_clean_console(page, html, browser):
    browser.get_log("browser")  # drop messages of earlier pages
    browser.get((html / f"{page}.html").as_uri())
    _wait_loaded(browser)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # wake lazily loaded images
    _wait_loaded(browser)
    assert browser.find_elements("css selector", "main h1"), "page has no title"
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    broken = [src for src, width in images if not width]
    assert not broken, f"images that did not decode: {broken}"
    wide = browser.execute_script(  # the theme wraps every table in a container that scrolls sideways
        "return Array.from(document.querySelectorAll('main .pst-scrollable-table-container'))"
        ".filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.querySelector('tr').textContent.trim())")
    assert not wide, f"tables wider than the text column at 1280 px (they scroll sideways): {wide}"
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, f"console errors: {severe}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _full_page_screenshot(browser, SCREENSHOTS / f"{Path(page).name}.png")


def test_chapters_with_figures_show_them(html, browser):
    """Figures are part of what the chapters teach: the executed chapters must carry them into the HTML."""
    for page in ("book/02_architecture", "book/03_source_backbone", "book/04_baseline", "book/05_improved"):
        browser.get((html / f"{page}.html").as_uri())
        _wait_loaded(browser)
        count = browser.execute_script("return document.querySelectorAll('main img').length")
        assert count >= 3, f"{page} shows only {count} figures"


def _visible(html_file: Path) -> str:
    """The text of a page's article, roughly as a reader sees it (tags removed, whitespace collapsed)."""
    main = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html_file.read_text().split("<main", 1)[1], flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", main)))


@pytest.mark.parametrize("page", toc_pages())
def test_page_reads_well(page, html):
    """The committed (smoke) state as a reader meets it: no machinery, no raw values, numbered chapters and
    figures with captions and real alt text, and never a placeholder inside a sentence."""
    source = (html / f"{page}.html").read_text()
    text = _visible(html / f"{page}.html")
    for machinery in ("record_path", ".finish(", "getsource", "chapter.start(", "Show code cell", "IPython.core",
                      "{glue", "'identity'", "NaN", "params_M", "gpu_minutes"):
        assert machinery not in text, f"{page} shows {machinery!r}"
    assert not re.search(r"[a-z,] \*?\*?(CPU )?smoke configuration — not a result", text, re.I), "placeholder in prose"
    name = Path(page).name
    if name[:2].isdigit():
        assert re.search(rf"<h1><span class=\"section-number\">{int(name[:2])}\. </span>", source), "unnumbered"
    for figure in re.findall(r"<figure.*?</figure>", source, flags=re.S):
        assert re.search(r'caption-number">Fig\. \d+\.\d+ ', figure), "a figure without a numbered caption"
        alt = re.search(r'<img alt="([^"]*)"', figure).group(1)
        assert len(alt) > 30 and not re.fullmatch(r"[0-9a-f]+", alt), f"alt text {alt!r}"
    if name in ("index", "01_introduction", "08_results"):
        assert "Status at a glance Measured:" in text and "Awaiting a GPU:" in text
        assert "CONVNEXT_REPORT_" not in text and "pytest" not in text, "testing and environment: the README"
    if name == "08_results":
        assert "Download this table as CSV" in text and "— (smoke run)" in text
    if name == "status":
        assert all(f'href="{p}.html"' in source for p in ("02_architecture", "04_baseline", "09_performance"))
        assert "tools/execute_chapters --smoke --chapters 04_baseline" in text
