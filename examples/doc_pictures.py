"""The pictures in README.md and docs/, made by the commands the docs show, on the embedded model:
`python -m examples.doc_pictures` (then look at each one: they are reviewed by eye when they
change). The score pictures (gltr-*.png, score-ab.*) come from longer texts and are made by hand
as docs/score.md describes; the explorer's by `examples/explore_screenshots.py`, called last.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
CAPITAL = "The capital of France is"

# (what the docs show, the command's arguments): one list, so a picture and its command stay together
COMMANDS: list[tuple[str, list[str]]] = [
    ("capital", ["predict", CAPITAL, "-o", "capital.svg", "-o", "capital.png", "-o", "capital.html"]),
    ("seed-compare", ["compare", "What is 2 + 2?",
                      "In one sentence, describe the color orange to someone who has never been able to see",
                      "Write a creative opening line for a mystery novel", "-n", "16", "-o", "seed-compare.svg"]),
    ("math-top-p", ["predict", "What is 2 + 2?", "-n", "6", "-k", "4", "--show-sampling", "top_p=0.9",
                    "-o", "math-top-p.svg"]),
    ("creative-samples", ["sample", "Write a creative opening line for a mystery novel", "-s", "5", "-n", "10",
                          "--seed", "7", "-o", "creative-samples.svg"]),
    ("tree", ["tree", CAPITAL, "--depth", "3", "--branch", "3", "--complete", "4", "-o", "tree.svg"]),
]


def tokviz(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "tokviz", *args, "-q"], cwd=OUT, check=True)


def html_screenshots() -> None:
    """html-light.png and html-dark.png: capital.html in Chromium, a token hovered so its
    alternatives show, once per colour scheme."""
    from playwright.sync_api import sync_playwright

    from examples.explore_screenshots import launch

    with sync_playwright() as p:
        browser: Any = launch(p)
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 900, "height": 520}, color_scheme=scheme)
            page.goto((OUT / "capital.html").as_uri())
            page.hover(".tok >> nth=1")
            page.wait_for_timeout(200)
            page.screenshot(path=str(OUT / f"html-{scheme}.png"))
            page.close()
        browser.close()


def main() -> None:
    for name, args in COMMANDS:
        print(f"drawing {name}", file=sys.stderr)
        tokviz(args)
    html_screenshots()
    from examples import explore_screenshots

    explore_screenshots.main()


if __name__ == "__main__":
    main()
