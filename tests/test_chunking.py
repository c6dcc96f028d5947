"""Chunks are exact slices of their page, fit the embedding model, and cover the page."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chunking import MAX_CHUNK_TOKENS, chunk_pages, sentence_spans, split_page
from engine.documents import Page, normalise_text

WORDS = st.sampled_from(
    [
        "the",
        "Agreement",
        "shall",
        "terminate",
        "upon",
        "thirty",
        "(30)",
        "days'",
        "notice.",
        "Licensee",
        "e.g.",
        "§ 4.2",
        "non-disclosure",
        "“quoted”",
        "—",
        "naïve",
        "ﬁnal",
        "3.5%",
        "Dr.",
        "Mr.",
        "?",
        "!",
        "\n",
        "\n\n",
        "supercalifragilisticexpialidocious",
        "数据",
        "مرحبا",
    ]
)
PAGE_TEXTS = st.lists(WORDS, max_size=600).map(lambda words: normalise_text(" ".join(words)))


@pytest.fixture(scope="module")
def offsets(embedder):
    return embedder.token_offsets


@settings(max_examples=150, deadline=None)
@given(text=PAGE_TEXTS)
def test_chunks_are_exact_bounded_and_cover_the_page(offsets, embedder, text):
    page = Page(page_index=3, page_label="iv", text=text)
    chunks = chunk_pages("d" * 64, [page], offsets)
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert (chunk.page_index, chunk.page_label) == (3, "iv")
        assert len(embedder.tokenizer(chunk.text)["input_ids"]) <= embedder.model.max_seq_length
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.char_start, chunk.char_end))
    uncovered = [c for i, c in enumerate(text) if i not in covered and not c.isspace()]
    assert uncovered == []
    starts = [chunk.char_start for chunk in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))


def test_long_text_is_split_at_sentence_boundaries_with_overlap(offsets):
    sentences = [f"Clause {n} binds the parties to obligation number {n}." for n in range(80)]
    text = " ".join(sentences)
    spans = split_page(text, offsets, max_tokens=60)
    assert len(spans) > 5
    for start, end in spans:
        piece = text[start:end]
        assert piece.startswith("Clause") and piece.endswith(".")
    # consecutive chunks share their boundary sentence
    assert all(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))


def test_a_sentence_longer_than_the_budget_is_cut_at_word_starts(offsets):
    text = " ".join(f"word{n}" for n in range(2000))
    spans = split_page(text, offsets, max_tokens=MAX_CHUNK_TOKENS)
    assert len(spans) > 1
    for start, end in spans:
        assert start == 0 or text[start - 1] == " "
        assert end == len(text) or text[end] == " "


def test_a_short_trailing_footer_joins_the_previous_sentences(offsets):
    body = " ".join(f"Sentence {n} says something about the contract terms." for n in range(60))
    spans = split_page(body + "\n\n17", offsets)
    last = body[spans[-1][0] :] + "\n\n17"
    assert spans[-1][1] == len(body) + 4
    assert len(last) > 100


def test_sentence_spans_skip_whitespace():
    text = "  One. Two!  \n\n Three?  "
    assert [text[s:e] for s, e in sentence_spans(text)] == ["One.", "Two!", "Three?"]


def test_normalisation_joins_pdfium_soft_hyphens_and_unfolds_ligatures():
    assert (
        normalise_text("pa\ufffepers are ﬁne\r\nnext\x0cline  end ")
        == "papers are fine\nnext line end"
    )


def test_a_table_is_a_chunk_of_its_own_and_a_long_one_is_cut_between_rows(offsets):
    prose = "The schedule below lists every unit. " * 3
    short = "| Unit | Rent |\n| --- | --- |\n| A1 | 41,250 |\n| B7 | 18,900 |"
    rows = "\n".join(f"| Unit {i} | Tenant {i} of the estate | {1000 + i} |" for i in range(60))
    long = "| Unit | Tenant | Rent |\n| --- | --- | --- |\n" + rows
    text = f"{prose}\n{short}\n{prose}\n{long}\nThat is all."
    chunks = [text[start:end] for start, end in split_page(text, offsets)]
    assert short in chunks
    parts = [chunk for chunk in chunks if chunk.startswith("| Unit")]
    assert len(parts) > 2 and "\n".join(parts[1:]) == long
    for part in parts:
        assert len(offsets(part)) <= MAX_CHUNK_TOKENS
    assert not any("|" in chunk for chunk in chunks if chunk not in parts)
