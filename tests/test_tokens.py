"""Token bytes → text: exact, visible, never mojibake."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tokviz.run import tokens


def test_display_makes_whitespace_visible() -> None:
    assert tokens.display(b" Paris") == "␣Paris"
    assert tokens.display(b"\n\t\r") == "↵⇥⇤"  # every stand-in has a glyph in the graphs' fonts (fc-list)


def test_display_escapes_fragments_of_a_character() -> None:
    emoji = "🙂".encode()
    assert tokens.display(emoji[:2]) == "\\xf0\\x9f"
    assert tokens.display(emoji[2:]) == "\\x99\\x82"
    assert tokens.display("한".encode()[:2] + b"x") == "\\xed\\x95x"


def test_display_escapes_control_characters() -> None:
    assert tokens.display(b"\x07\x1b[31m") == "\\x07\\x1b[31m"


def test_segments_mark_what_is_not_literal() -> None:
    segs = tokens.segments(b"a b\xff")
    assert [(s.text, s.raw) for s in segs] == [("a", False), ("␣", True), ("b", False), ("\\xff", True)]


def test_pieces_join_a_character_split_across_tokens() -> None:
    k = "한".encode()
    assert tokens.pieces([k[:1], k[1:], b" ok"]) == ["", "한", " ok"]
    assert tokens.join([k[:2], k[2:]]) == "한"


def test_join_replaces_bytes_that_never_decode() -> None:
    assert tokens.join([b"\xff", b"a"]) == "\ufffda"
    assert tokens.join([b"a", "🙂".encode()[:3]]) == "a\ufffd"  # truncated at the end


@given(st.text())
def test_join_of_any_split_equals_the_text(text: str) -> None:
    data = text.encode("utf-8")
    parts = [data[i : i + 1] for i in range(len(data))]
    assert tokens.join(parts) == text
    assert "".join(tokens.pieces(parts)) == text


@given(st.binary(max_size=12))
def test_display_of_any_bytes_is_one_printable_line(data: bytes) -> None:
    shown = tokens.display(data)
    assert "\n" not in shown and "\r" not in shown
    assert all(tokens.shown(ch) for ch in shown)  # printable, or a character newer than Python's tables (🪿)
    assert all(ch.isprintable() or 0x10000 <= ord(ch) < 0xE0000 for ch in shown)
    assert bool(shown) == bool(data)


def test_every_stand_in_has_a_glyph_in_the_font_graphs_are_drawn_with() -> None:
    """PNGs are drawn by Graphviz with the system's sans-serif font: a stand-in it lacks is a box
    (␍ was). fc-list answers which fonts hold a character."""
    import shutil
    import subprocess

    from tokviz.run import tokens

    assert shutil.which("fc-list"), "fontconfig comes with Graphviz"
    family = subprocess.run(["fc-match", "-f", "%{family[0]}", "sans-serif"], capture_output=True, text=True,
                            check=True).stdout
    for ch in tokens.display(b" \n\t\r"):
        found = subprocess.run(["fc-list", f":family={family}:charset={ord(ch):x}", "family"], capture_output=True,
                               text=True, check=True).stdout
        assert found.strip(), f"{ch} (U+{ord(ch):04X}) is not in {family}"
