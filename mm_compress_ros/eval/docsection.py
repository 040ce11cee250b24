"""Sections of docs/*.md that a benchmark writes between its own markers, so that `make results`
and each benchmark can regenerate their part without touching the rest."""

from __future__ import annotations

from pathlib import Path


def put_section(doc: Path, begin: str, end: str, body: str, before: str = "## Reproduce") -> None:
    """Replaces the text between the ``begin`` and ``end`` markers of ``doc`` with ``body`` (the
    markers kept), or inserts the marked section before the heading ``before`` the first time."""
    text = doc.read_text()
    section = f"{begin}\n{body}{end}\n"
    if begin in text:
        a, b = text.index(begin), text.index(end) + len(end) + 1
        text = text[:a] + section + text[b:]
    else:
        i = text.index(before)
        text = text[:i] + section + "\n" + text[i:]
    doc.write_text(text)
