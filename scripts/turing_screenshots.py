"""Screenshots of the visual Turing test for the README: the rater's page (desktop and phone)
and the results page, from a small study whose answers are scripted.

    .venv/bin/python scripts/turing_screenshots.py --synthetic out/demo/synthetic

Needs Debian's chromium and chromium-driver. Writes docs/images/turing_rater.png,
turing_rater_phone.png and turing_results.png, reduced to 128-colour PNGs (well under 200 KB).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "screenshot-token"


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--hide-scrollbars", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )


def shrink(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=ROOT / "data" / "isic-demo")
    parser.add_argument("--synthetic", type=Path, default=ROOT / "out" / "demo" / "synthetic")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from validator.turing.server import bind, create_server
    from validator.turing.store import Store
    from validator.turing.study import new_session, open_study

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "turing.sqlite")
        study, _ = open_study(
            store, "demo", args.real, args.synthetic, per_rater=24, size=256, seed=3
        )
        rng = np.random.default_rng(0)
        roles = {idx: role for idx, role, _name in store.image_roles("demo")}
        for rater, skill, count in (("dermatologist A", 0.7, 24), ("dermatologist B", 0.6, 24)):
            session = new_session(store, study, rater)
            for position in range(count):
                image = store.current(session)
                role = roles[_image_of(store, session, image.position)]
                right = rng.random() < skill
                guess = role if right else ("real" if role == "synthetic" else "synthetic")
                store.answer(session, position, guess, int(rng.integers(2, 6)))
        link = new_session(store, study, "dermatologist C")
        for position in range(5):
            store.answer(link, position, "real", 3)
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = create_server(store, study, TOKEN, host="127.0.0.1", port=port)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        driver = browser(900, 760)
        try:
            driver.get(f"{base}/r/{link}")
            ActionChains(driver).send_keys("s").send_keys("4").perform()
            driver.save_screenshot(str(args.out / "turing_rater.png"))
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": 390, "height": 760, "deviceScaleFactor": 1, "mobile": True},
            )
            driver.refresh()
            ActionChains(driver).send_keys("r").send_keys("2").perform()
            driver.save_screenshot(str(args.out / "turing_rater_phone.png"))
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            driver.get(f"{base}/admin")
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
            WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "raters"))
            height = driver.execute_script("return document.getElementById('raters').offsetTop")
            driver.set_window_size(1000, min(int(height) + 40, 1400))
            driver.save_screenshot(str(args.out / "turing_results.png"))
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(10)
    for name in ("turing_rater.png", "turing_rater_phone.png", "turing_results.png"):
        shrink(args.out / name)
    return 0


def _image_of(store, session: str, position: int) -> int:
    import sqlite3

    with sqlite3.connect(store.path) as db:
        (image,) = db.execute(
            "SELECT image FROM trials WHERE session = ? AND position = ?", (session, position)
        ).fetchone()
    return image


if __name__ == "__main__":
    sys.exit(main())
