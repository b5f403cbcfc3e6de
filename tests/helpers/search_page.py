"""The search page of ``cg3d serve`` in a real browser: the app on a local port in a background
thread, and headless Chromium driven by Selenium. Shared by tests/test_serve.py and
benchmarks/bench_page.py."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING_BROWSER = "needs headless Chromium: apt-get install chromium chromium-driver (Debian)"
WAIT_S = 60


def browser_missing() -> bool:
    return not (CHROMIUM.exists() and (CHROMEDRIVER.exists() or shutil.which("chromedriver")))


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app's URL while it runs on 127.0.0.1 on a free port, single-threaded as ``cg3d serve`` runs it."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.shutdown()
        thread.join()


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def searches_done(driver: webdriver.Chrome) -> int:
    """How many searches the page has finished showing (results or error, thumbnails decoded)."""
    return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-searches"))


def wait_for_search(driver: webdriver.Chrome, before: int) -> None:
    WebDriverWait(driver, WAIT_S).until(lambda _: searches_done(driver) > before)


def search_text(driver: webdriver.Chrome, text: str) -> None:
    """Type the query and press Search, as a person would; return once the page shows the answer."""
    before = searches_done(driver)
    box = driver.find_element(By.ID, "query-text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "search-button").click()
    wait_for_search(driver, before)


def upload(driver: webdriver.Chrome, path: Path) -> None:
    """Choose a file in the page's file input; the page searches with it at once."""
    before = searches_done(driver)
    driver.find_element(By.ID, "query-file").send_keys(str(path))
    wait_for_search(driver, before)


def shown_results(driver: webdriver.Chrome) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results .result")


def shown_ids(driver: webdriver.Chrome) -> list[str]:
    return [result.get_attribute("data-id") for result in shown_results(driver)]


def shown_error(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.ID, "error").text


def preview_ink(driver: webdriver.Chrome) -> int:
    """Pixels of the preview canvas that are drawn and not its white background."""
    return driver.execute_script("""
        const canvas = document.getElementById("preview-canvas");
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let ink = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            ink += pixels[i + 3] > 0 && (pixels[i] < 255 || pixels[i + 1] < 255 || pixels[i + 2] < 255);
        }
        return ink;""")


def wait_for_preview(driver: webdriver.Chrome) -> int:
    """The number of points the preview canvas drew, once it drew some."""
    canvas = driver.find_element(By.ID, "preview-canvas")
    WebDriverWait(driver, WAIT_S).until(lambda _: int(canvas.get_attribute("data-points")) > 0)
    return int(canvas.get_attribute("data-points"))
