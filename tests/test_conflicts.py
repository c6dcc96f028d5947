"""Conflicting sources: the same kind of quantity, in the same context, with different values."""

from __future__ import annotations

import pytest
from helpers import pdf_bytes, write

from engine.attribution import attribute_sentences
from engine.conflicts import extract_quantities, find_conflicts, parse_number
from engine.library import SearchHit

THIRTY = "Either party may terminate this Agreement by giving thirty (30) days' written notice."
SIXTY = "Either party may terminate this Agreement by giving sixty (60) days' written notice."


def _hit(text: str, doc: str, page: int = 0, start: int = 0) -> SearchHit:
    return SearchHit(
        chunk_id=f"{doc}-p{page}-c{start}",
        doc_id=doc,
        filename=f"{doc}.pdf",
        page_index=page,
        page_label=str(page + 1),
        char_start=start,
        char_end=start + len(text),
        score=1.0,
        text=text,
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("30", 30), ("2,000,000", 2e6), ("99.5", 99.5), ("thirty-six", 36), ("Ninety", 90)]
    + [("two hundred and fifty", 250), ("one thousand", 1000), ("notice", None)],
)
def test_numbers_in_words_and_figures(text: str, value: float | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "kind", "unit", "value"),
    [
        ("within thirty (30) days' notice", "duration", "day", 30),
        ("within 30 days of it", "duration", "day", 30),
        ("within one month of it", "duration", "day", 30),
        ("for a term of thirty-six (36) months", "duration", "day", 1080),
        ("within ten (10) Business Days", "duration", "business day", 10),
        ("for two years", "duration", "day", 730),
        ("made on 14 March 2024", "date", "date", "2024-03-14"),
        ("made on March 14, 2024", "date", "date", "2024-03-14"),
        ("made on 2024-03-14", "date", "date", "2024-03-14"),
        ("a fee of £2.5 million", "money", "GBP", 2.5e6),
        ("a fee of $1,200", "money", "USD", 1200),
        ("2,000,000 Kestrel dollars", "money", "Kestrel dollars", 2e6),
        ("interest at 4% a year", "percentage", "%", 4),
        ("interest at five per cent", "percentage", "%", 5),
        ("a board of three (3) members", "count", "membe", 3),
        ("we ran 48 tasks", "count", "task", 48),
    ],
)
def test_quantities_are_found_and_normalised(text, kind, unit, value) -> None:
    (quantity,) = [q for q in extract_quantities(text) if q.kind == kind]
    assert (quantity.unit, quantity.value) == (unit, value)
    assert text[quantity.start : quantity.end] == quantity.text


def test_references_are_not_figures() -> None:
    assert extract_quantities("as clause 12 states and s. 4 provides, see page 3 below") == []


def test_different_counts_of_one_thing_conflict() -> None:
    board = "The supervisory board has three (3) members appointed by the shareholders."
    (conflict,) = find_conflicts([_hit(board, "a"), _hit(board.replace("three (3)", "5"), "b")])
    assert conflict.kind == "count" and "board" in conflict.about
    assert [side["value"] for side in conflict.to_json()["values"]] == [3, 5]


def test_context_is_the_words_around_a_quantity_without_values() -> None:
    (notice,) = extract_quantities(THIRTY)
    assert {"termi", "writt", "notic", "agree"} <= notice.context
    assert not any(word.startswith(("thirt", "30", "day")) for word in notice.context)


def test_different_notice_periods_in_two_documents_conflict() -> None:
    (conflict,) = find_conflicts([_hit(THIRTY, "a"), _hit("Payment. " + SIXTY, "b", 2, 100)])
    assert conflict.kind == "duration" and {"notic", "termi"} <= set(conflict.about)
    first, second = conflict.to_json()["values"]
    assert (first["filename"], first["value"], first["text"]) == ("a.pdf", 30, "thirty (30) days'")
    assert (second["filename"], second["page_label"], second["value"]) == ("b.pdf", "3", 60)
    assert SIXTY[second["start"] - 109 : second["end"] - 109] == "sixty (60) days'"


@pytest.mark.parametrize(
    "other",
    [
        THIRTY.replace("thirty (30) days'", "one month's"),  # the same period, other words
        "The Customer shall pay each invoice within sixty (60) days of receiving it.",
        THIRTY.replace("thirty (30) days'", "sixty (60) Business Days'"),  # another unit
    ],
)
def test_agreeing_or_unrelated_values_do_not_conflict(other: str) -> None:
    assert find_conflicts([_hit(THIRTY, "a"), _hit(other, "b")]) == []


def test_one_document_is_not_in_conflict_with_itself() -> None:
    assert find_conflicts([_hit(THIRTY, "a"), _hit(SIXTY, "a", page=3)]) == []


def test_two_precedents_that_disagree_on_a_notice_period_raise_a_conflict(library, tmp_path):
    """Real PDFs in a real library: the section cites both, and the conflict names both pages."""
    first = write(
        tmp_path / "precedent-a.pdf",
        pdf_bytes(
            [
                "12. Termination\nEither party may terminate this Agreement for convenience by"
                "\ngiving the other party thirty (30) days' written notice of termination."
            ]
        ),
    )
    second = write(
        tmp_path / "precedent-b.pdf",
        pdf_bytes(
            [
                "3. Payment\nThe Customer shall pay each invoice within fourteen (14) days.",
                "9. Termination\nEither party may terminate this Agreement for convenience by"
                "\ngiving the other party sixty (60) days' written notice of termination.",
            ]
        ),
    )
    assert [library.ingest(path).status for path in (first, second)] == ["added", "added"]

    section = "Either party may terminate this Agreement for convenience on written notice."
    (sentence,) = attribute_sentences(library, section)
    passages = [citation.hit for citation in sentence.citations]
    assert {hit.filename for hit in passages} == {"precedent-a.pdf", "precedent-b.pdf"}

    (conflict,) = find_conflicts(passages)
    values = {side["filename"]: side for side in conflict.to_json()["values"]}
    assert values["precedent-a.pdf"]["value"] == 30 and values["precedent-a.pdf"]["page_label"]
    assert values["precedent-b.pdf"]["value"] == 60
    assert values["precedent-b.pdf"]["page_index"] == 1
    page = library.page(values["precedent-b.pdf"]["doc_id"], 1)
    span = values["precedent-b.pdf"]
    assert page.text[span["start"] : span["end"]] == "sixty (60) days'"
