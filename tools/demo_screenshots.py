"""The README's walk-through screenshots, taken from a running `make demo` with Debian's chromium.

    .venv/bin/python tools/demo_screenshots.py before   # after the base model has predicted the new images
    .venv/bin/python tools/demo_screenshots.py after    # after a fine-tune on corrected night images

Logs in as the demo's admin (password from var/demo_admin_password) and writes docs/demo-*.png.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["before", "after"])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    password = (REPO / "var" / "demo_admin_password").read_text().strip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{args.url}/accounts/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{args.url}/")
        page.click("text=Demo: day and night")
        project_url = page.url
        project_id = re.search(r"/projects/(\d+)/", project_url).group(1)
        if args.stage == "before":
            page.screenshot(path=str(args.out / "demo-project.png"))
            page.goto(f"{args.url}/projects/{project_id}/queue/")
            page.screenshot(path=str(args.out / "demo-queue.png"))
        # The editor on the most urgent night image still waiting (the images API, with the page's session).
        queue = page.request.get(f"{args.url}/api/v1/projects/{project_id}/images/"
                                 "?status=unreviewed&ordering=priority&name=night&page_size=1").json()
        page.goto(f"{args.url}/images/{queue['results'][0]['id']}/edit")
        page.wait_for_selector("svg")
        page.click("summary")  # open "Why is this image here?"
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / f"demo-editor-{args.stage}.png"))
        if args.stage == "after":
            page.goto(f"{args.url}/projects/{project_id}/models/")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(args.out / "demo-models.png"))
        browser.close()


if __name__ == "__main__":
    main()
