"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) with JavaScript switched off: every page loads, the links lead from the overview to a
failing version to its report, the heat map and evidence marks are there, the Verify page tells
a genuine report from a tampered one, and each page prints. Screenshots of every page are written
to the session's temp folder (``screenshots/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from serve_data import FAILING, HOSTILE, REMEDIATED, WAIVED

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None or not Path(DRIVER).exists(),
    reason="needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)")]


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--disable-extensions"):
        options.add_argument(flag)
    # no JavaScript: every page and form must work without it
    options.add_experimental_option("prefs", {
        "profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def screenshot(driver, folder: Path, name: str) -> Path:
    """The whole page (not just the window) as a PNG."""
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": min(int(height) + 20, 5000), "deviceScaleFactor": 1,
        "mobile": False})
    path = folder / f"{name}.png"
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def heading(driver) -> str:
    return by_css(driver, "h1")[0].text


def submit_upload(driver, url: str, pdf: Path) -> str:
    """Choose ``pdf`` on the Verify form, submit it, and return the page's heading once the
    answer has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/verify")
    form = by_css(driver, "#verify-form")[0]
    by_css(driver, "#report-file")[0].send_keys(str(pdf))
    by_css(driver, "#verify-submit")[0].click()
    WebDriverWait(driver, 60).until(lambda d: not _attached(form))
    WebDriverWait(driver, 60).until(lambda d: by_css(d, "#verdict") or by_css(d, "#error"))
    return heading(driver)


def _attached(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return True
    except StaleElementReferenceException:
        return False


@pytest.mark.parametrize("name, path, title", [
    ("overview", "/", "Overview"),
    ("version-failing", "/versions/clf/v2", "clf @ v2"),
    ("version-remediated", "/versions/clf/v3", "clf @ v3"),
    ("version-vendor", "/versions/tox/v1", "tox @ v1"),
    ("trends", "/trends?model=clf&behaviour=toxicity", "Trends: clf"),
    ("reports", "/reports", "Reports"),
    ("verify", "/verify", "Verify a report"),
    ("event-log", "/log?limit=25", "Event log"),
    ("not-found", "/versions/clf/v99", "404"),
])
def test_each_page_loads(browser, server, shots, name, path, title):
    browser.get(server.url + path)
    assert heading(browser).startswith(title)
    assert by_css(browser, "header.site nav a")  # the navigation is on every page
    screenshot(browser, shots, name)


def test_overview_to_failing_version_to_its_report(browser, server, shots, built):
    browser.get(server.url + "/")
    failing = by_css(browser, "tr.version-row[data-verdict='FAIL'] a.version-link")
    assert len(failing) == 1
    failing[0].click()
    assert browser.current_url == f"{server.url}/versions/{FAILING.replace('@', '/')}"
    assert "FAIL" in heading(browser)
    cells = by_css(browser, "#heatmap svg g[id^='cell-']")
    assert len(cells) == 3 * 2  # stages × behaviours
    # the chart's styling applies under the page's Content-Security-Policy: 7-px cell values
    # (not the browser's 16-px default), a white chart background (not black fill)
    value = by_css(browser, "#heatmap svg text")[0]
    assert float(value.value_of_css_property("font-size").removesuffix("px")) < 12
    background = by_css(browser, "#heatmap svg #patch_1 path")[0]
    assert background.value_of_css_property("fill") in ("rgb(255, 255, 255)", "#ffffff")
    marks = by_css(browser, "#effects .ev")
    assert len(marks) == 6 and {m.text for m in marks} == {"uncalibrated"}
    assert [s.text.split("\n")[0] for s in by_css(browser, "#stage-graph .stage h3")] == \
        ["s0", "s1", "s2"]
    blamed = [row.text for row in by_css(browser, "#policy-rows tbody tr")]
    assert any("toxicity-share" in row and "s1" in row and "fail" in row for row in blamed)
    by_css(browser, "#version-reports a.report-link")[0].click()
    assert browser.current_url == f"{server.url}/reports/{built.report_id}"
    assert by_css(browser, "#verdict")[0].text == "VALID"
    link = by_css(browser, "#download")[0].get_attribute("href")
    assert link == f"{server.url}/reports/{built.report_id}/pdf"
    screenshot(browser, shots, "report")


def test_exact_marks_on_a_replayed_version(browser, server):
    browser.get(server.url + f"/versions/{REMEDIATED.replace('@', '/')}")
    assert {m.text for m in by_css(browser, "#effects .ev")} == {"exact"}
    remediation = by_css(browser, "table.remediation")[0].text
    assert "toxicity 0.52 0.04" in remediation


def test_vendor_markup_is_shown_as_text(browser, server):
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(server.url + f"/versions/{WAIVED.replace('@', '/')}")
    assert HOSTILE in by_css(browser, "#stage-1")[0].text
    assert HOSTILE in by_css(browser, "#waivers")[0].text
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


@pytest.mark.parametrize("which, expected", [("genuine", "VALID"), ("tampered", "INVALID")])
def test_verify_upload(browser, server, shots, built, which, expected):
    pdf = built.report_pdf if which == "genuine" else built.tampered_pdf
    submit_upload(browser, server.url, pdf)
    verdict = by_css(browser, "#verdict")
    assert verdict, browser.find_element("tag name", "body").text
    assert verdict[0].text == expected
    failed = [row.text for row in by_css(browser, "table.checks tbody tr") if "FAIL" in row.text]
    assert (not failed) == (expected == "VALID")
    screenshot(browser, shots, f"verify-{which}")


def test_verify_refuses_a_file_that_is_not_a_pdf(browser, server, built):
    assert submit_upload(browser, server.url, built.policy).startswith("400")
    assert "policy.yaml is not a PDF file" in by_css(browser, "#error")[0].text


def test_pages_print_without_navigation(browser, server, shots):
    import base64

    browser.get(server.url + f"/versions/{FAILING.replace('@', '/')}")
    nav = by_css(browser, "header.site nav")[0]
    assert nav.is_displayed()
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not nav.is_displayed() and not by_css(browser, "footer a")[0].is_displayed()
        assert by_css(browser, "#heatmap svg")[0].is_displayed()
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    printed = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
    pdf = base64.b64decode(printed["data"])
    assert pdf.startswith(b"%PDF-")
    (shots / "version-failing-print.pdf").write_bytes(pdf)
