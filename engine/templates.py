"""Section headings for the documents people draft most, to start a draft from and then edit.

The headings follow the usual structure of each kind of document (a services agreement's
clauses, IMRaD for a research note, the question-answer-discussion shape of a legal memo); they
are a starting point the user changes freely, not a schema the engine relies on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    name: str
    instruction: str  # a suggested instruction, shown as the field's example
    headings: tuple[str, ...]


TEMPLATES = (
    Template(
        "Services agreement",
        "Draft a services agreement between the supplier and the customer, following the "
        "precedents in my library.",
        (
            "Definitions and interpretation",
            "Services",
            "Fees and payment",
            "Term",
            "Termination for convenience",
            "Termination for cause",
            "Effect of termination",
            "Confidentiality",
            "Data protection",
            "Limitation of liability",
            "Governing law and jurisdiction",
        ),
    ),
    Template(
        "Non-disclosure agreement",
        "Draft a mutual non-disclosure agreement, following the NDA in my library.",
        (
            "Definition of confidential information",
            "Obligations of the receiving party",
            "Exclusions",
            "Compelled disclosure",
            "Return and destruction of information",
            "Term and survival",
            "Remedies",
            "Governing law",
        ),
    ),
    Template(
        "Research note (IMRaD)",
        "Write a short research note on the findings reported in my sources.",
        ("Abstract", "Introduction", "Methods", "Results", "Discussion", "Conclusion"),
    ),
    Template(
        "Literature review",
        "Review the literature in my library on this topic.",
        (
            "Introduction and scope",
            "Search and selection of sources",
            "Main themes",
            "Points of disagreement",
            "Gaps in the literature",
            "Conclusion",
        ),
    ),
    Template(
        "Legal memorandum",
        "Write a memorandum advising the client on the question, from the authorities in my "
        "library.",
        (
            "Question presented",
            "Brief answer",
            "Facts",
            "Applicable law",
            "Analysis",
            "Conclusion and recommendations",
        ),
    ),
)


def template(name: str) -> Template:
    for candidate in TEMPLATES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
