"""The dashboard in headless Chromium during a real replay: chart moves, alert fires, actions work.

The pipeline is the real embedded one (replay → model → SQLite → rates → alert engine) on
the demo's code path without the shared data: the head model (MiniLM encoder) trained on
the generated headlines, and the generated stream, on 2 s windows so the episode plays out
in ~40 s. (model/tiny.py's random encoder cannot tell a profit warning from a dividend
hike, so it would not raise the alert this test is about.)
A screenshot lands in ``artifacts/dashboard.png`` (and the search view beside it).
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console
from selenium import webdriver
from selenium.common.exceptions import (
    ElementNotInteractableException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from alerts.config import RuleConfig
from app.settings import Settings
from dashboard.config import ApiSettings
from dashboard.demo import DemoReport, ensure_model, run_demo
from finpulse.contracts import Scope
from tools.dashboard.demo_data import demo_stream, write_jsonl

# A missing browser fails the test naming its packages (tests/conftest.py's `chromium`).
pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WINDOW_S, RATE = 2, 16.0
CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,1000", "--force-device-scale-factor=1",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, thread: threading.Thread, result: dict, seconds: float = 60) -> None:
    """Block until the demo's server accepts connections: a browser that starts faster than
    the server would otherwise meet ERR_CONNECTION_REFUSED on its first page load."""
    deadline = time.monotonic() + seconds
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    why = result.get("error", f"not within {seconds} s")
    raise AssertionError(f"the demo's server did not listen on port {port}: {why}")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The demo (pipeline + dashboard) running in a thread; yields (url, settings, report)."""
    root = tmp_path_factory.mktemp("browser")
    params = {"warmup": 4, "half_life": 100, "cooldown": 20}
    settings = Settings(
        data_dir=root / "no-data",  # a fresh clone: the shipped model and data
        model={"registry_dir": root / "models", "max_length": 32},
        store={"sqlite_path": root / "finpulse.db"},
        stream={"window_s": WINDOW_S, "batch_within_s": 0.2,
                "deadletter_path": root / "dead.jsonl"},
        alerts={"state_db": root / "alerts.db", "late_grace_s": 2 * WINDOW_S, "rules": [
            RuleConfig(name="market-negative-share", scope=Scope.GLOBAL, window_s=WINDOW_S,
                       params=params),
        ]},
    )  # fmt: skip
    said = io.StringIO()
    ensure_model(settings, Console(file=said, width=200))  # the shipped model: no training
    assert "model: shipped with finpulse" in said.getvalue()
    api = ApiSettings(port=free_port(), metrics_port=0, feedback_path=root / "feedback.jsonl")
    # 24 s (12 windows) of calm before the episode. With 7 (a CI failure, session 4) the
    # first negative window (0.56) met a threshold of 0.72 and later ones a band the episode
    # had already widened. Replaying those counts through dashboard.bands, 12 calm windows
    # brought the threshold to 0.59. The cause was the detector's: the first window, 0 of
    # 17 against the prior's 0.3, counted as over-dispersion. It now weighs a window by the
    # data's share of the baseline, and the same replay meets the episode at 0.53
    # (test_a_first_window_far_from_the_prior_does_not_mask_a_spike).
    stream = demo_stream(settings.data_dir, burst_at=int(24 * RATE), burst_len=int(10 * RATE))
    replay = write_jsonl(stream.rows, root / "stream.jsonl")  # 600 generated rows, 37.5 s

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: dict[str, DemoReport | BaseException] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            result["report"] = loop.run_until_complete(
                run_demo(
                    settings,
                    api,
                    replay,
                    say=print,
                    stop=stop,
                    rate=RATE,
                    serve_metrics=False,
                    registry=CollectorRegistry(),
                )
            )
        except BaseException as exc:  # surfaced by the test below
            result["error"] = exc

    thread = threading.Thread(target=run, name="demo", daemon=True)
    thread.start()
    wait_listening(api.port, thread, result)
    yield f"http://127.0.0.1:{api.port}", api, result
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive(), "the demo did not stop within 30 s"
    assert "error" not in result, result.get("error")
    loop.close()


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def wait(driver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.25)


def bars(driver, filled: bool = False) -> int:
    """Bars of the main chart (read in one script: the chart redraws every second)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#chart rect.bar')]"
        ".filter((b) => !arguments[0] || Number(b.getAttribute('height')) > 0).length",
        filled,
    )


def _pipeline_state(url: str) -> str:
    """What the detector saw, per window, and every alert: why no alert fired."""
    import urllib.request

    def get(path: str) -> object:
        with urllib.request.urlopen(url + path, timeout=10) as r:
            return json.loads(r.read())

    rates = get("/api/rates?windows=60")
    points = [
        {k: p.get(k) for k in ("start", "total", "negative", "share", "baseline", "threshold")}
        for p in rates["points"]
        if p.get("total")
    ]
    return f"windows: {points}; alerts: {get('/api/alerts?state=all')}"


def test_analyst_flow_in_chromium(pipeline, browser):
    url, api, result = pipeline
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(url)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))

    # The chart fills in as the replay goes on.
    wait(browser, 40).until(lambda d: bars(d, filled=True) >= 2)
    first = bars(browser, filled=True)
    wait(browser, 30).until(lambda d: bars(d, filled=True) > first)
    assert bars(browser) >= bars(browser, filled=True) > first

    # The negative episode raises an alert, with evidence, without reloading the page.
    try:
        card = wait(browser, 60).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#firing li.alert"))
        )
    except TimeoutException:
        pytest.fail(f"no alert appeared; demo state: {result}; {_pipeline_state(url)}")
    assert "Market" in card.text and "negative" in card.text
    assert card.find_elements(By.CSS_SELECTOR, "ol li"), "alert shows no evidence"
    assert browser.find_elements(By.CSS_SELECTOR, "#chart path.threshold")
    time.sleep(1.5)  # let the chart redraw with the alerted window highlighted
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # Acknowledge it from the keyboard (Tab onto the button, then Enter). The list redraws
    # while the replay updates the alert's evidence; a redraw between the steps moves focus,
    # so the steps are retried until Tab lands on the button.
    def acknowledge(d) -> bool:
        button = d.find_element(By.CSS_SELECTOR, "#firing button[data-key$=':ack']")
        d.execute_script("arguments[0].previousElementSibling.focus()", button)
        d.switch_to.active_element.send_keys(Keys.TAB)
        if d.switch_to.active_element != button:
            return False
        d.switch_to.active_element.send_keys(Keys.ENTER)
        return True

    redrawn = [StaleElementReferenceException, ElementNotInteractableException]
    WebDriverWait(browser, 20, ignored_exceptions=redrawn).until(acknowledge)
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#firing li.alert.acked")))
    assert "acknowledged by analyst" in browser.find_element(By.ID, "firing").text

    # Search for an article, then correct its sentiment.
    browser.find_element(By.CSS_SELECTOR, "nav a[data-view='search']").click()
    box = wait(browser).until(ec.element_to_be_clickable((By.ID, "q")))
    box.clear()
    box.send_keys("dividend", Keys.ENTER)
    wait(browser).until(lambda d: "dividend" in d.find_element(By.ID, "results").text.lower())
    summary = browser.find_element(By.ID, "results-summary").text
    assert summary.endswith("articles") and int(summary.split()[0].replace(",", "")) > 0
    row = browser.find_element(By.CSS_SELECTOR, "#results li[data-id]")
    article_id = row.get_attribute("data-id")
    row.find_element(By.XPATH, ".//button[normalize-space()='Wrong label?']").click()
    dialog = wait(browser).until(ec.visibility_of_element_located((By.ID, "feedback-dialog")))
    dialog.find_element(By.CSS_SELECTOR, "input[value='topic']").click()
    labels = Select(dialog.find_element(By.ID, "fb-label"))
    labels.select_by_index(1)
    chosen = labels.first_selected_option.get_attribute("value")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-feedback.png"))
    dialog.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "toast"), "Thanks"))
    rows = [json.loads(line) for line in api.feedback_path.read_text().splitlines()]
    assert rows[-1]["article_id"] == article_id and rows[-1]["label"] == chosen
    assert rows[-1]["task"] == "topic"

    # The history lists the acknowledged alert.
    browser.find_element(By.CSS_SELECTOR, "nav a[data-view='alerts']").click()
    wait(browser).until(lambda d: "analyst" in d.find_element(By.ID, "history").text)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-alerts.png"))

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
