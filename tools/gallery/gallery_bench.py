#!/usr/bin/python3
"""How the gallery page holds up at scale, in real headless Chromium.

    gallery_bench.py [--images 100000]

Writes a page (runner/gallery/page.html, the data in the shape runner/gallery/gallery.cc embeds)
of N items with realistic prompt lengths, all showing one real PNG, then measures in headless
Chromium: the page's size, the time until the first page of the grid is drawn, a search over
every prompt, a filter change, and turning to the next page. Prints one line per figure.
"""
import argparse
import base64
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from gallery_check import start  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# A 1x1 PNG: the page's cost is its data and DOM, not the decoding of images.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
WORDS = "cat dog lighthouse storm watercolor neon city forest portrait studio light mountain".split()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100000)
    args = parser.parse_args()
    rng = random.Random(7)
    items = []
    for i in range(args.images):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        resolution = rng.choice(["1K", "2K", "4K"])
        failed = i % 50 == 0
        items.append([f"item-{i:08d}", "failed" if failed else "done", prompt, resolution,
                      rng.choice(["1:1", "16:9", "3:2"]), "png", 16, f"task-{i}",
                      "content_policy_violation" if failed else "", "refused" if failed else "",
                      [] if failed else [["x.png", 1024, 1024, 1500000, ""]], None])
    template = open(os.path.join(ROOT, "runner/gallery/page.html")).read()
    with tempfile.TemporaryDirectory(prefix="gallery-bench-") as work:
        with open(os.path.join(work, "x.png"), "wb") as image:
            image.write(PNG)
        page = os.path.join(work, "index.html")
        data = json.dumps(items, separators=(",", ":")).replace("<", "\\u003c")
        with open(page, "w") as out:
            out.write(template.replace("@DATA@", data))
        print(f"items                  {args.images}")
        print(f"page size              {os.path.getsize(page) / 1e6:.1f} MB")
        with tempfile.TemporaryDirectory(prefix="gallery-profile-") as profile:
            driver = start(profile)
            try:
                started = time.monotonic()
                driver.get("file://" + page)
                WebDriverWait(driver, 120).until(
                    lambda d: d.find_element(By.ID, "count").get_attribute("data-images"))
                print(f"load to first page     {(time.monotonic() - started) * 1000:.0f} ms")
                box = driver.find_element(By.ID, "search")
                started = time.monotonic()
                box.send_keys("lighthouse storm")
                cards = driver.find_element(By.ID, "count").get_attribute("data-cards")
                print(f"search (every prompt)  {(time.monotonic() - started) * 1000:.0f} ms, "
                      f"{cards} cards match (typed keystroke by keystroke)")
                box.clear()
                started = time.monotonic()
                Select(driver.find_element(By.ID, "state")).select_by_value("failed")
                print(f"filter by state        {(time.monotonic() - started) * 1000:.0f} ms")
                Select(driver.find_element(By.ID, "state")).select_by_value("")
                started = time.monotonic()
                driver.find_element(By.ID, "next").click()
                print(f"next page              {(time.monotonic() - started) * 1000:.0f} ms")
                heap = driver.execute_script(
                    "return performance.memory ? performance.memory.usedJSHeapSize : 0")
                print(f"JS heap                {heap / 1e6:.0f} MB")
            finally:
                driver.quit()


if __name__ == "__main__":
    main()
