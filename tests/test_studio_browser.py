"""The studio end to end in a real headless Chromium: edit two layers, evaluate, export, rebuild.

Needs Debian's ``chromium`` and ``chromium-driver``: the fixture installs them with apt-get when
they are missing and the tests run as root (as on CI), and says how otherwise. Set ``ZQ_STUDIO_SCREENSHOT=path.png`` to keep a screenshot of the
page after the evaluation (the README's is made that way).
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from system_packages import ensure_installed  # tests/system_packages.py (tests/ is on sys.path)

from zenml_quant.search.trial import load_keras_bytes
from zenml_quant.search.types import Targets
from zenml_quant.studio import Studio, StudioServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "The studio's browser test drives Debian's Chromium: install it with `sudo apt-get install "
    "-y --no-install-recommends chromium chromium-driver`, then rerun."
)


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_installed([CHROMIUM, CHROMEDRIVER], ["chromium", "chromium-driver"], INSTALL_HINT)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1500")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _text(wait, selector: str) -> str:
    """The element's text, read again if the page re-renders it meanwhile."""
    from selenium.webdriver.common.by import By

    return wait.until(lambda d: d.find_element(By.CSS_SELECTOR, selector).text)


def _cell(wait, figure: str, column: str) -> str:
    return _text(wait, f'td[data-figure="{figure}"][data-col="{column}"]')


def _choose(driver, wait, layer: str, op: str, label: str) -> None:
    """Pick ``label`` in the layer's select, then wait for the table to show the edit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    selector = f'select[data-layer="{layer}"][data-op="{op}"]'
    wait.until(
        lambda d: (
            Select(d.find_element(By.CSS_SELECTOR, selector)).select_by_visible_text(label) or True
        )
    )
    wait.until(
        lambda d: (
            Select(d.find_element(By.CSS_SELECTOR, selector)).first_selected_option.text == label
        )
    )


def test_edit_two_layers_evaluate_and_export_in_a_browser(browser, digits, digits_model):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from zenml_quant.integration.steps.search import apply_edits

    studio = Studio(digits_model, digits, targets=Targets(max_size_bytes=14_300))
    with StudioServer(studio) as server:
        # The page re-renders its tables as results arrive: read again rather than fail.
        wait = WebDriverWait(
            browser,
            300,
            poll_frequency=0.2,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        browser.get(server.url)
        # The original model is evaluated at start; its figures fill both columns.
        wait.until(lambda d: _cell(wait, "size_bytes", "current").endswith(" B"))
        base_size = _cell(wait, "size_bytes", "baseline")
        base_accuracy = _cell(wait, "accuracy", "baseline")
        assert _cell(wait, "size_bytes", "current") == base_size

        _choose(browser, wait, "conv1", "precision", "precision: float32")
        _choose(browser, wait, "relu1", "activation", "activation: relu6")
        plan = _text(wait, "#plan").splitlines()
        assert [p.rstrip("×").strip() for p in plan if p.strip("× ")] == [
            "keep conv1 in float32",
            "set relu1's activation to relu6",
        ]
        epochs = browser.find_element(By.ID, "epochs")
        epochs.clear()
        epochs.send_keys("1")
        browser.find_element(By.ID, "evaluate").click()
        wait.until(lambda d: "#1" in _text(wait, "#shown-label"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history tbody tr")) == 2)

        assert _cell(wait, "size_bytes", "baseline") == base_size
        new_size = _cell(wait, "size_bytes", "current")
        new_accuracy = _cell(wait, "accuracy", "current")
        assert new_size != base_size and new_accuracy != base_accuracy
        assert _cell(wait, "size_bytes", "change").startswith("+")
        # 14,300 B: the int8 original passes, with conv1 in float32 it does not.
        assert _text(wait, 'tr[data-target="size"]').endswith("fail")
        assert "relu6" in _text(wait, 'tr[data-evaluation="1"]')
        assert _text(wait, 'tr[data-layer="conv1"] td[data-col="precision"]') == "float32"
        if os.environ.get("ZQ_STUDIO_SCREENSHOT"):
            browser.save_screenshot(os.environ["ZQ_STUDIO_SCREENSHOT"])

        link = wait.until(lambda d: d.find_element(By.ID, "export").get_attribute("href"))
        with urllib.request.urlopen(link, timeout=30) as response:
            exported = response.read().decode()

    rebuilt, _ = apply_edits.entrypoint(digits_model, exported, digits)
    kept = load_keras_bytes(studio.evaluation(1).keras)
    assert rebuilt.to_json() == kept.to_json()
    for a, b in zip(rebuilt.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dashboard_pages_fit_the_frame_the_dashboard_gives_them(browser, tmp_path):
    """ZenML shows a visualization in a frame about 958x384 px: our pages must not need
    sideways scrolling there, and their charts must keep readable labels. A screenshot of
    each is kept (``ZQ_DASHBOARD_SCREENSHOTS=folder`` keeps them for a person to look at)."""
    from zenml_quant.report.compress import comparison_html
    from zenml_quant.types import BaselineSummary, CandidateResult

    baseline = BaselineSummary(
        "resnet8",
        "tf_keras",
        "test",
        5000,
        0.731,
        {},
        78_666,
        77_946,
        12_000_000,
        314_664,
        65_536,
        320_000,
    )
    names = [
        "float32",
        "dynamic_range",
        "float16",
        "int8",
        "int16x8",
        "mixed",
        "mixed_qat",
        "qat",
        "bn_int8",
        "search_1",
        "search_2",
    ]
    candidates = [
        CandidateResult(
            name,
            name,
            45_000 + 300 * i,
            0.726 + 0.0004 * i,
            "test",
            {},
            0.14,
            1,
            40_000,
            ("CONV_2D",),
            float_layers=("stage3_conv1", "stage3_shortcut", "logits"),
        )
        for i, name in enumerate(names)
    ]
    page = tmp_path / "comparison.html"
    page.write_text(comparison_html(baseline, candidates))
    browser.set_window_size(958, 384)
    browser.get(page.as_uri())
    inner = browser.execute_script("return window.innerWidth")
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= inner, (scroll, inner)
    from selenium.webdriver.common.by import By

    chart = browser.find_element(By.TAG_NAME, "svg")  # the size-accuracy chart
    assert 0 < chart.size["width"] <= inner
    folder = Path(os.environ.get("ZQ_DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / "comparison.png"))
    browser.set_window_size(958, 900)  # the whole chart in view for its picture
    browser.execute_script("arguments[0].scrollIntoView()", chart)
    assert chart.screenshot(str(folder / "comparison_chart.png"))
    assert (folder / "comparison_chart.png").stat().st_size > 1000
