"""The HTML view in a real headless browser (Debian's chromium, driven by Playwright, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import make_run, run_cli
from tokviz.run import Run
from tokviz.views import export, heatmap


def open_page(browser: Any, path: Path, **context: Any) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(**context)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    return page, errors, requests


def write_html(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / "run.html"
    path.write_bytes(export.render(run, "html"))
    return path


def test_page_loads_offline_and_hover_shows_alternatives(browser: Any, tmp_path: Path, small_run: Run) -> None:
    page, errors, requests = open_page(browser, write_html(small_run, tmp_path))
    assert errors == []
    assert requests == [(tmp_path / "run.html").as_uri()]  # nothing else: no CDN, no fonts, no network
    tip = page.locator("#tip")
    assert tip.is_hidden()
    page.hover(".tok >> nth=0")
    assert tip.is_visible()
    text = tip.inner_text()
    assert "␣Paris" in text and "81.2%" in text and "␣a" in text and "7.1%" in text
    assert page.locator("#tip .bar").count() == 3
    page.mouse.move(0, 0)
    assert tip.is_hidden()
    page.locator("details summary").click()  # the graph toggle
    assert page.locator("details svg").is_visible()


def test_the_page_reads_as_the_model_wrote_it_near_ties_included(browser: Any, tmp_path: Path) -> None:
    """The text shown is the prompt and every token's text, spaces included: a near-tie token (marked
    with its own class) lost its leading space once, and "the country" read "thecountry"."""
    run = make_run([[(" the", 0.30), (" a", 0.28)], [(" country", 0.5), (" city", 0.2)], [(" of", 0.26), (",", 0.25)],
                    [(" France", 0.9)]], prompt="The capital of France is")
    page, errors, _ = open_page(browser, write_html(run, tmp_path))
    assert page.locator(".tok.tie").count() == 2 and errors == []
    assert page.inner_text("#text") == "The capital of France is the country of France"


def test_keyboard_focus_shows_the_tooltip(browser: Any, tmp_path: Path, small_run: Run) -> None:
    page, errors, _ = open_page(browser, write_html(small_run, tmp_path))
    page.keyboard.press("Tab")  # the theme button
    page.keyboard.press("Tab")  # the first token
    assert page.evaluate("document.activeElement.dataset.i") == "0"
    assert page.locator("#tip").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#tip").is_hidden() and errors == []


def test_hostile_tokens_render_as_text(browser: Any, tmp_path: Path) -> None:
    evil = "<script>window.pwned=1</script>"
    run = make_run([[(evil, 0.6), ("</span><b>x</b>", 0.3)], [("</script><img src=x onerror=window.pwned=2>", 0.9)],
                    [("&amp;", 0.5)]], prompt="<i>prompt</i>")
    page, errors, requests = open_page(browser, write_html(run, tmp_path))
    assert page.evaluate("window.pwned") is None
    assert page.locator("script").count() == 2 and page.locator("img").count() == 0 and page.locator("i").count() == 0
    tokens = page.locator(".tok").all_inner_texts()
    assert tokens[0] == evil and tokens[2] == "&amp;"
    assert page.locator(".prompt").inner_text() == "<i>prompt</i>"
    page.hover(".tok >> nth=0")
    assert "</span><b>x</b>" in page.locator("#tip").inner_text()
    assert errors == [] and len(requests) == 1


def test_dark_theme_and_toggle(browser: Any, tmp_path: Path, small_run: Run) -> None:
    path = write_html(small_run, tmp_path)
    page, _, _ = open_page(browser, path, color_scheme="dark")
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(22, 23, 26)"
    page.click("#theme")
    assert page.evaluate(background) == "rgb(255, 255, 255)"


def test_html_from_predict_render_and_tree(tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    saved = tmp_path / "run.json"
    assert run_cli("predict", "The capital of France is", "-n", "5", "-o", str(out), "--save", str(saved), "-q").returncode == 0
    again = tmp_path / "r.html"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == out.read_bytes()
    assert len(out.read_bytes()) < 200_000
    tree = tmp_path / "t.html"
    assert run_cli("tree", "The capital of France is", "--depth", "2", "--branch", "2", "-o", str(tree), "-q").returncode == 0
    assert b"most likely paths" in tree.read_bytes() and b"<svg" in tree.read_bytes()


def test_terminal_heatmap(small_run: Run) -> None:
    plain = heatmap.heatmap(small_run, color=False).plain
    assert plain == "The capital of France is Paris[81.2%].[60.0%]caf[40.0%]\\xc3[90.0%]é[99.0%]"
    coloured = heatmap.view(small_run)
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, force_terminal=True, color_system="truecolor", width=100).print(coloured)
    assert "48;2;" in buf.getvalue()  # backgrounds
    proc = run_cli("predict", "The capital of France is", "-n", "3", "--view", "text")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("The capital of France is the[17.9%]")
    assert run_cli("predict", "x", "--view", "graph").returncode == 2


def test_samples_page_shows_each_samples_own_alternatives(browser: Any, tmp_path: Path) -> None:
    from tests.conftest import make_run
    from tokviz.run import RunKind, RunSet

    first = make_run([[("Once", 0.6), ("One", 0.3)]], prompt="Write:")
    second = make_run([[("Twice", 0.2), ("Two", 0.7)]], prompt="Write:")
    path = tmp_path / "samples.html"
    path.write_bytes(export.render(RunSet(kind=RunKind.SAMPLES, runs=(first, second)), "html"))
    page, errors, requests = open_page(browser, path)
    assert errors == [] and requests == [path.as_uri()]
    assert page.locator("section.text").count() == 2
    page.hover("#sample-2 .tok >> nth=0")
    text = page.locator("#tip").inner_text()
    assert "Twice" in text and "Two" in text and "70.0%" in text and "Once" not in text


def test_a_scored_text_switches_between_probability_and_gltr_rank_colours(browser: Any, tmp_path: Path, small_run: Run) -> None:
    from dataclasses import replace

    from tokviz.run import RunKind
    from tokviz.views.html import gltr_hex

    base = small_run
    ranks = (1, 57, 4000)
    steps = tuple(replace(s, rank=r) for s, r in zip(base.steps, ranks))
    run = replace(base, steps=steps[: len(ranks)], kind=RunKind.SCORE)
    page, errors, _ = open_page(browser, write_html(run, tmp_path))
    first = page.locator(".tok >> nth=0")
    before = first.evaluate("el => el.style.background")
    button = page.locator("#colour-by")
    assert page.locator("#legend-rank").is_hidden()
    button.click()
    colours = page.evaluate("Array.from(document.querySelectorAll('.tok')).map(el => el.style.background)")
    expected = page.evaluate("cs => cs.map(c => {const d = document.createElement('div'); d.style.background = c; return d.style.background})",
                             [gltr_hex(r) for r in ranks])
    assert colours == expected and page.locator("#legend-rank").is_visible() and page.locator("#legend-prob").is_hidden()
    button.click()
    assert first.evaluate("el => el.style.background") == before and errors == []


def test_a_predicted_run_has_no_rank_switch(browser: Any, tmp_path: Path, small_run: Run) -> None:
    page, errors, _ = open_page(browser, write_html(small_run, tmp_path))
    assert page.locator("#colour-by").count() == 0 and errors == []


def test_two_models_on_one_text_in_the_browser(browser: Any, tmp_path: Path, second_model: Path) -> None:
    out = tmp_path / "ab.html"
    proc = run_cli("score", "The Eiffel Tower is in Paris.", "--context", "Facts:", "-m", "gemma-3-270m", "-m", str(second_model),
                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page, errors, requests = open_page(browser, out)
    assert errors == [] and requests == [out.as_uri()]
    segments = page.locator(".seg")
    assert segments.count() == 7
    text = "".join(segments.nth(i).locator(".a").inner_text() for i in range(7))
    assert text == " The Eiffel Tower is in Paris."  # joined to "Facts:" with one space (said on stderr)
    assert "B /" in segments.nth(1).get_attribute("title") and "Δ" in segments.nth(1).get_attribute("title")
