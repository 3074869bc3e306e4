"""Byte-exact token text, and how to show it.

A token is bytes, not text: byte-fallback tokens, emoji and Korean syllables are often split across
tokens, so one token may hold half a UTF-8 character. tokviz keeps the exact bytes everywhere and
only turns them into text at the edge, in one of two ways:

- `display()` shows *one* token on its own: valid UTF-8 as text, every byte that does not decode
  as an escape such as ``\\xf0``, and whitespace made visible (``␣``, ``↵``, ``⇥``) so that a token
  that is only a space is not an empty cell.
- `join()` / `pieces()` turn a *sequence* of tokens into text with an incremental UTF-8 decoder, so
  a character split across two tokens comes out whole, never as mojibake.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Whitespace and control characters get a visible stand-in; anything else unprintable is escaped.
# A carriage return is "⇤" (back to the start of the line), not "␍": the fonts graphs are drawn
# with (DejaVu Sans, Noto) have no ␍, so PNGs showed a missing-glyph box.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "⇤"}


@dataclass(frozen=True)
class Segment:
    """A run of a token's display text; `raw` marks escaped bytes or stand-ins, not literal text."""

    text: str
    raw: bool = False


def _utf8_runs(data: bytes) -> Iterator[str | bytes]:
    """Split `data` into decodable text runs (str) and undecodable single bytes (bytes)."""
    i = 0
    while i < len(data):
        try:
            yield data[i:].decode("utf-8")
            return
        except UnicodeDecodeError as err:
            if err.start:
                yield data[i : i + err.start].decode("utf-8")
            bad_end = i + max(err.end, err.start + 1)
            for b in data[i + err.start : bad_end]:
                yield bytes([b])
            i = bad_end


def segments(data: bytes, *, visible_spaces: bool = True) -> list[Segment]:
    """The display segments of one token's bytes, in order (see the module docstring).

    `visible_spaces=False` keeps ordinary spaces as spaces, for running text such as a prompt.
    """
    out: list[Segment] = []
    for run in _utf8_runs(data):
        if isinstance(run, bytes):
            out.append(Segment(f"\\x{run[0]:02x}", raw=True))
            continue
        buf = []
        for ch in run:
            stand_in = _VISIBLE.get(ch) if (visible_spaces or ch != " ") else None
            if stand_in is None and not shown(ch):
                stand_in = ch.encode("unicode_escape").decode("ascii")
            if stand_in is None:
                buf.append(ch)
                continue
            if buf:
                out.append(Segment("".join(buf)))
                buf = []
            out.append(Segment(stand_in, raw=True))
        if buf:
            out.append(Segment("".join(buf)))
    return out


def shown(ch: str) -> bool:
    """Whether a character is shown as itself: printable, or a character this Python's Unicode
    tables do not know yet (emoji such as 🪿 U+1FABF came after Python 3.11's tables) outside the
    ranges that hold controls, format characters, surrogates and private use. Its UTF-8 bytes are
    valid, and a terminal or font that knows it draws it; an escape would hide a real character."""
    if ch.isprintable():
        return True
    import unicodedata

    code = ord(ch)  # the supplementary planes where new pictographs and ideographs are assigned
    return unicodedata.category(ch) == "Cn" and 0x10000 <= code < 0xE0000 and (code & 0xFFFE) != 0xFFFE


def display(data: bytes) -> str:
    """One token's bytes as a single visible string (never empty for non-empty bytes)."""
    return "".join(s.text for s in segments(data))


def pieces(tokens: Iterable[bytes]) -> list[str]:
    """The text each token *completes*, decoded incrementally.

    A token that ends mid-character contributes '' and the next one carries the whole character,
    so ``"".join(pieces(ts)) == join(ts)`` and no piece is ever a broken character. Bytes that
    can never decode become U+FFFD, as Python's "replace" handler does.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = [decoder.decode(t) for t in tokens]
    tail = decoder.decode(b"", final=True)
    if tail:
        if out:
            out[-1] += tail
        else:
            out.append(tail)
    return out


def join(tokens: Iterable[bytes]) -> str:
    """The text of a sequence of tokens, with characters split across tokens joined whole."""
    return "".join(pieces(tokens))


def visible(text: str, *, visible_spaces: bool = True) -> str:
    """Text with whitespace and control characters made visible, for one-line labels."""
    return "".join(s.text for s in segments(text.encode("utf-8"), visible_spaces=visible_spaces))


def safe(text: str) -> str:
    """Running text made safe for a terminal or a text file, keeping its line breaks and tabs.

    Every other control character (ESC and so every ANSI/OSC sequence, C1 codes, DEL), and every
    invisible format character (bidi overrides and isolates, zero-width joiners) is shown as an
    escape such as ``\\x1b`` or ``\\u202e``: a prompt, a token, a server message or a saved file
    can then never set a terminal's title, write its clipboard, move its cursor or reorder what a
    reader sees. This is the one function every terminal- or text-bound string from outside goes
    through (table cells use `display`, which escapes the same characters).
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or shown(ch):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def markup(text: str) -> str:
    """Untrusted text for HTML, SVG or XML: control characters (ESC, BEL, NUL, C1) and invisible
    format characters shown as escapes (`safe`), then `<`, `>`, `&` and quotes escaped."""
    import html

    return html.escape(safe(text).encode("utf-8", "backslashreplace").decode("utf-8"))


def count(n: int, word: str, plural: str | None = None) -> str:
    """A count with its noun: "1 token", "2 tokens" (every figure a reader sees, said right)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {plural or word + 's'}"
