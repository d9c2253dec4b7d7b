"""The rater's page in a real browser (Debian's headless chromium through Selenium): a scripted
rater completes a session with the keyboard and the mouse and the results match the answers; a
closed tab resumes at the right image; ``kill -9`` of a real server process loses no answer the
browser saw acknowledged; the page fits a phone-sized screen."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.validator.turing.conftest import ROOT, TOKEN, get, new_browser, start

N = 8  # images per rater in these studies


def truth(store, image_src: str) -> str:
    with sqlite3.connect(store.path) as db:
        (role,) = db.execute(
            "SELECT i.role FROM trials t JOIN images i ON i.idx = t.image WHERE t.token = ?",
            (image_src.rsplit("/", 1)[1],),
        ).fetchone()
    return role


def wait_for_counter(driver, number: int, timeout: float = 10) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.ID, "counter"), f"Image {number} of {N}")
    )


def answer(driver, choice: str, confidence: int, *, keyboard: bool) -> str:
    """Answer the image on screen; returns its src. Waits for the next page (the ack)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    image = driver.find_element(By.ID, "image")
    src = image.get_attribute("src")
    WebDriverWait(driver, 10).until(  # the image itself arrived and decoded
        lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image
        )
    )
    if keyboard:
        ActionChains(driver).send_keys(choice[0]).send_keys(str(confidence)).perform()
        ActionChains(driver).send_keys(Keys.ENTER).perform()
    else:
        driver.find_element(By.CSS_SELECTOR, f"label:has(#answer-{choice}) span").click()
        driver.find_element(By.CSS_SELECTOR, f"label:has(#confidence-{confidence}) span").click()
        driver.find_element(By.ID, "next").click()
    token = src.rsplit("/", 1)[1]
    WebDriverWait(driver, 10).until(
        lambda d: token not in d.page_source or d.find_elements(By.ID, "done")
    )
    return src


def test_a_scripted_rater_completes_a_session_and_the_results_match(live, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    link = live.new_rater("alice")
    browser.get(link)
    given = []
    for position in range(N):
        wait_for_counter(browser, position + 1)
        progress = browser.find_element(By.ID, "progress")
        assert progress.get_attribute("value") == str(position)
        src = browser.find_element(By.ID, "image").get_attribute("src")
        choice = truth(live.store, src) if position % 3 else "synthetic"  # right, mostly
        confidence = 1 + position % 5
        answer(browser, choice, confidence, keyboard=position % 2 == 0)
        given.append((position, choice, confidence, truth(live.store, src)))
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "done"))
    assert browser.find_element(By.ID, "done").is_displayed()
    browser.save_screenshot(str(tmp_path / "done.png"))

    stored = [(a.position, a.answer, a.confidence, a.role) for a in live.store.answers("s1")]
    assert stored == given
    _status, _h, body = get(live.url + "/admin/results.json", token=TOKEN)
    import json

    doc = json.loads(body)
    correct = sum(c == t for _p, c, _k, t in given)
    assert (doc["answers"], doc["accuracy"]["k"]) == (N, correct)
    assert doc["raters"] == {"sessions": 1, "started": 1, "completed": 1}
    # the admin page in the browser: login form, then the results
    browser.get(live.url + "/admin")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "answers"))
    assert browser.find_element(By.ID, "answers").text == str(N)
    thumbs = browser.find_elements(By.CSS_SELECTOR, ".thumbs img")
    assert thumbs and all(
        browser.execute_script("return arguments[0].naturalWidth", t) == 96 for t in thumbs
    )


def test_a_closed_tab_resumes_at_the_right_image(live, browser):
    from selenium.webdriver.common.by import By

    link = live.new_rater("bea")
    browser.get(link)
    for position in range(3):
        wait_for_counter(browser, position + 1)
        answer(browser, "real", 4, keyboard=True)
    wait_for_counter(browser, 4)
    browser.quit()  # the tab and the browser are gone; a fresh one has no cookie or cache
    other = new_browser()
    try:
        other.get(link)
        wait_for_counter(other, 4)
        src = other.find_element(By.ID, "image").get_attribute("src")
        with sqlite3.connect(live.store.path) as db:
            (token,) = db.execute(
                "SELECT token FROM trials WHERE session = ? AND position = 3",
                (link.rsplit("/", 1)[1],),
            ).fetchone()
        assert src.endswith("/i/" + token)
        answer(other, "synthetic", 2, keyboard=False)
        wait_for_counter(other, 5)
    finally:
        other.quit()
    assert [a.position for a in live.store.answers("s1")] == [0, 1, 2, 3]


def spawn(db, port: int) -> subprocess.Popen:
    env = {**os.environ, "DERMSYNTH_TURING_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "validator", "turing", "serve", "--study", "s1"]
        + ["--db", str(db), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/static/turing.css", timeout=2)
            return proc
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the server did not start: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.1)


def test_kill_9_mid_session_loses_no_acknowledged_answer(make_study, browser):
    from common.net import free_port
    from validator.turing.study import new_session

    store, study = make_study(N)
    link_path = "/r/" + new_session(store, study, "cy")
    port = free_port()
    proc = spawn(store.path, port)
    try:
        browser.get(f"http://127.0.0.1:{port}{link_path}")
        acknowledged = []
        for position in range(3):
            wait_for_counter(browser, position + 1)
            answer(browser, ("real", "synthetic")[position % 2], 5 - position, keyboard=True)
            wait_for_counter(browser, position + 2)  # the next page came: acknowledged
            acknowledged.append((position, ("real", "synthetic")[position % 2], 5 - position))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        printed = proc.stdout.read()
        assert b"study s1 (resumed)" in printed and TOKEN.encode() not in printed
        assert [(a.position, a.answer, a.confidence) for a in store.answers("s1")] == acknowledged
        proc = spawn(store.path, port)
        browser.refresh()
        wait_for_counter(browser, 4)
        answer(browser, "real", 1, keyboard=True)
        wait_for_counter(browser, 5)
    finally:
        proc.kill()
        proc.wait(10)
    assert len(store.answers("s1")) == 4


def test_the_rater_page_fits_a_phone(make_study):
    from selenium.webdriver.common.by import By

    live = start(*make_study(N, size=256))
    driver = new_browser(600, 900)
    try:  # headless windows are at least 500 px wide: emulate the phone's viewport
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        driver.get(live.new_rater("dee"))
        wait_for_counter(driver, 1)
        inner = driver.execute_script("return window.innerWidth")
        assert inner <= 400
        assert driver.execute_script("return document.documentElement.scrollWidth") <= inner
        image = driver.find_element(By.ID, "image")
        assert 0 < image.size["width"] <= inner
        for element_id in ("answer-real", "answer-synthetic", "confidence-5", "next"):
            box = driver.find_element(
                By.CSS_SELECTOR, f"label:has(#{element_id}) span, #{element_id}"
            )
            right = box.location["x"] + box.size["width"]
            assert box.location["x"] >= 0 and right <= inner, element_id
        assert not driver.find_element(By.CSS_SELECTOR, ".keys").is_displayed()
    finally:
        driver.quit()
        live.stop()
