"""The screenshots in docs/explore.md, made from a real exploration of the embedded model in
real Chromium: `python -m examples.explore_screenshots` (review them by eye when they change)."""

from __future__ import annotations

from pathlib import Path

from tokviz import pipeline
from tokviz.explore.server import Server
from tokviz.explore.session import Session
from tokviz.run.generation import Generation

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"
PROMPT = "Once upon a time, in a small village,"


def launch(playwright: object) -> object:
    """Debian's chromium (what the tests drive, `make test-deps` installs it), headless."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium",  # type: ignore[attr-defined]
                                      args=["--no-sandbox", "--disable-gpu"])


def main() -> None:
    from playwright.sync_api import sync_playwright

    session = Session(pipeline.plan(Generation(max_tokens=16, top_k=5), PROMPT))
    session.first_run()
    server = Server(session)
    server.start()
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 820}, device_scale_factor=1)
            page.goto(server.url)
            page.wait_for_selector("#text .tok")
            page.fill("#count", "16")

            def branch(token: int, alternative: int) -> None:
                page.click(f"#text .tok:nth-of-type({token + 1})")
                page.click(f"#alts .alt:nth-of-type({alternative})")
                page.wait_for_selector("#cancel", state="hidden")
                page.wait_for_selector("#status:not(:has-text('generating'))")

            branch(1, 2)
            branch(3, 3)
            page.click("#text .tok:nth-of-type(4)")
            page.screenshot(path=str(OUT / "explore-branch.png"))
            page.fill("#temperature", "1.3")
            page.dispatch_event("#temperature", "input")
            page.fill("#topk", "3")
            page.dispatch_event("#topk", "input")
            page.click("#branches .branch:nth-child(1) input")  # the list is redrawn after each
            page.click("#branches .branch:nth-child(3) input")
            page.screenshot(path=str(OUT / "explore-compare.png"))
            browser.close()
    finally:
        server.stop()
        session.close()


if __name__ == "__main__":
    main()
