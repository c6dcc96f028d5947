"""Where on its page a quoted passage sits, as a lawyer pins it: the clause or section it falls in.

A contract numbers its clauses at the start of a line ("12.2 The Customer shall..."); a statute
its sections ("4 Duties of controllers") and subsections ("(2) A controller shall..."). The pin
for a passage is the last such number that starts a line at or before the passage on its page.
A passage above the first number on its page has no pin (the page alone locates it).
"""

from __future__ import annotations

import re

_CLAUSE = re.compile(r"(?m)^[ \t]*(\d{1,3}(?:\.\d{1,3})+)\.?[ \t]+\S")
_SECTION = re.compile(r"(?m)^[ \t]*(\d{1,3}[A-Z]?)\.?[ \t]+[A-Z][a-z]")
_SUBSECTION = re.compile(r"(?m)^[ \t]*\((\d{1,3}[a-z]?)\)[ \t]+\S")


def clause_at(page_text: str, offset: int) -> str:
    """The number of the clause ("12.2") that the text at `offset` belongs to, or ""."""
    clauses = _numbers_up_to(_CLAUSE, page_text, offset)
    return clauses[-1].group(1) if clauses else ""


def section_at(page_text: str, offset: int) -> str:
    """The statute section ("4" or "4(2)") that the text at `offset` belongs to, or ""."""
    sections = _numbers_up_to(_SECTION, page_text, offset)
    if not sections:
        return ""
    section = sections[-1]
    subsections = _numbers_up_to(_SUBSECTION, page_text, offset, section.end())
    return section.group(1) + (f"({subsections[-1].group(1)})" if subsections else "")


def _numbers_up_to(
    pattern: re.Pattern[str], text: str, offset: int, start: int = 0
) -> list[re.Match[str]]:
    """The numbered lines of `text` from `start` whose number begins at or before `offset`: a
    quote that starts with its clause number belongs to that clause."""
    return [m for m in pattern.finditer(text, start) if m.start() <= offset]
