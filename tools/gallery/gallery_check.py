#!/usr/bin/python3
"""Checks a nanobatch gallery (index.html) in real headless Chromium, driven by Selenium.

    gallery_check.py PAGE --images N --failed F --screenshot OUT.png
                     [--search TEXT --search-cards K] [--resolution R --resolution-images M]

Loads the page from disk as a user would (file://), then checks: no console error or warning
(a missing image is a console error); the count of images and failed items; that the first
page's images are really decoded; that the state, resolution and search filters narrow the grid
to the expected counts and that clearing them restores it; and saves a screenshot. Prints what
it saw; exits 1 on any difference, 2 when Chromium cannot be started.
"""
import argparse
import json
import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
PAGE_SIZE = 120  # page.html's PAGE


def start(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", f"--user-data-dir={profile}",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def counts(driver):
    count = driver.find_element(By.ID, "count")
    return int(count.get_attribute("data-images")), int(count.get_attribute("data-cards"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("page")
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--failed", type=int, required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--search", default="")
    parser.add_argument("--search-cards", type=int, default=-1)
    parser.add_argument("--resolution", default="")
    parser.add_argument("--resolution-images", type=int, default=-1)
    args = parser.parse_args()

    problems = []
    seen = {}
    with tempfile.TemporaryDirectory(prefix="gallery-check-") as profile:
        try:
            driver = start(profile)
        except Exception as error:  # noqa: BLE001 - any failure to start is the same verdict
            print(f"gallery_check: cannot start headless Chromium: {error}", file=sys.stderr)
            return 2
        try:
            driver.get("file://" + os.path.abspath(args.page))
            WebDriverWait(driver, 20).until(
                lambda d: d.find_element(By.ID, "count").get_attribute("data-images") is not None)
            images, cards = counts(driver)
            seen["images"], seen["cards"] = images, cards
            if images != args.images:
                problems.append(f"{images} images shown, expected {args.images}")
            if cards != args.images + args.failed:
                problems.append(f"{cards} cards, expected {args.images + args.failed}")

            # The first page's images, decoded for real (scrolled into view: they are lazy).
            imgs = driver.find_elements(By.CSS_SELECTOR, "#grid img")
            seen["first_page_imgs"] = len(imgs)
            if len(imgs) != min(args.images, PAGE_SIZE):
                problems.append(f"{len(imgs)} images on the first page")
            for img in imgs[:12]:
                driver.execute_script("arguments[0].scrollIntoView()", img)
            WebDriverWait(driver, 20).until(lambda d: all(
                d.execute_script("return arguments[0].complete", img) for img in imgs[:12]))
            broken = [img.get_attribute("src") for img in imgs[:12]
                      if driver.execute_script("return arguments[0].naturalWidth", img) == 0]
            if broken:
                problems.append(f"images not decoded: {broken}")

            # Filters: failed only, a resolution, a search; then everything again.
            state = Select(driver.find_element(By.ID, "state"))
            state.select_by_value("failed")
            failed_images, failed_cards = counts(driver)
            seen["failed_filter"] = [failed_images, failed_cards]
            if (failed_images, failed_cards) != (0, args.failed):
                problems.append(f"state=failed shows {failed_images} images, {failed_cards} cards")
            if args.failed and not driver.find_elements(By.CSS_SELECTOR, "#grid .failure"):
                problems.append("failed items show no error")
            state.select_by_value("")
            if args.resolution:
                Select(driver.find_element(By.ID, "resolution")).select_by_value(args.resolution)
                shown, _ = counts(driver)
                seen["resolution_filter"] = shown
                if shown != args.resolution_images:
                    problems.append(f"resolution={args.resolution} shows {shown} images")
                Select(driver.find_element(By.ID, "resolution")).select_by_value("")
            if args.search:
                box = driver.find_element(By.ID, "search")
                box.send_keys(args.search)
                _, shown = counts(driver)
                seen["search_filter"] = shown
                if shown != args.search_cards:
                    problems.append(f"search {args.search!r} shows {shown} cards")
                if "q=" not in driver.execute_script("return location.hash"):
                    problems.append("the search is not kept in the address")
                box.clear()
                box.send_keys(" ")  # an input event with an empty query
            if counts(driver) != (args.images, args.images + args.failed):
                problems.append(f"clearing the filters shows {counts(driver)}")

            driver.execute_script("scrollTo(0, 0)")
            driver.save_screenshot(args.screenshot)
            logs = driver.get_log("browser")
            seen["console"] = [entry["message"] for entry in logs]
            bad = [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")]
            if bad:
                problems.append(f"console: {[entry['message'] for entry in bad]}")
        finally:
            driver.quit()
    print(json.dumps(seen))
    for problem in problems:
        print("gallery_check: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
