"""Which library passages support a piece of text, and which spans of each match it.

Works on any text (a drafted block, a sentence the user typed): candidates come from hybrid
search with the text as the query; each is scored by the cosine similarity of its stored vector to
the text's embedding and by how much of the text it covers word for word. Matched spans are runs
of at least `MIN_SPAN_WORDS` identical words (case-insensitive), reported as character ranges in
the text and in the chunk's page, so a citation can be highlighted on both sides.

Sentence-level attribution (`attribute_sentences`) cites every sentence on its own. A sentence's
support from a passage is `sentence_support`: the mean of the cosine between the sentence and the
passage's stored vector and the share of the sentence's content words found in the passage's
best-matching sentence. The cosine alone cannot tell "same topic" from "says this", and word
overlap alone misses paraphrase; their mean separates copied and lightly paraphrased sentences
from unrelated ones (see `SUPPORTED_AT`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

import numpy as np

from engine.search_hit import SearchHit

if TYPE_CHECKING:  # only in annotations: reading a stored draft needs no stores
    from engine.library import Library

MIN_SPAN_WORDS = 3
DENSE_WEIGHT = 0.5  # support = 0.5 * cosine similarity + 0.5 * share of the text matched verbatim
_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True)
class MatchedSpan:
    text_start: int  # in the attributed text
    text_end: int
    page_start: int  # in the page text of the supporting chunk
    page_end: int


@dataclass(frozen=True)
class Support:
    hit: SearchHit
    support: float
    spans: list[MatchedSpan]

    def quotes(self) -> list[str]:
        """The matched passages, as they read in the source."""
        offset = self.hit.char_start
        return [self.hit.text[s.page_start - offset : s.page_end - offset] for s in self.spans]

    def to_json(self) -> dict:
        return {
            **self.hit.to_json(),
            "support": round(self.support, 4),
            "spans": [
                {"text": [s.text_start, s.text_end], "chunk": [s.page_start, s.page_end]}
                for s in self.spans
            ],
        }


def _words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    matches = list(_WORD.finditer(text))
    return [m.group().lower() for m in matches], [m.span() for m in matches]


def matched_spans(text: str, chunk_text: str, min_words: int = MIN_SPAN_WORDS):
    """Runs of identical words shared by `text` and `chunk_text`, as character ranges in each."""
    words_a, spans_a = _words(text)
    words_b, spans_b = _words(chunk_text)
    matcher = SequenceMatcher(None, words_a, words_b, autojunk=False)
    return [
        (spans_a[a][0], spans_a[a + size - 1][1], spans_b[b][0], spans_b[b + size - 1][1])
        for a, b, size in matcher.get_matching_blocks()
        if size >= min_words
    ]


def attribute(
    library: Library, text: str, k: int = 3, doc_ids: list[str] | None = None
) -> list[Support]:
    """The `k` passages that best support `text`, strongest first."""
    if not text.strip():
        return []
    candidates = library.search(text, k=max(3 * k, 10), doc_ids=doc_ids)
    if not candidates:
        return []
    query = library.embedder.embed_query(text)
    stored = library.vectors.vectors_of([hit.chunk_id for hit in candidates])
    supports = []
    for hit in candidates:
        vector = stored.get(hit.chunk_id)
        similarity = float(np.dot(query, vector)) if vector is not None else 0.0
        spans = [
            MatchedSpan(a0, a1, hit.char_start + b0, hit.char_start + b1)
            for a0, a1, b0, b1 in matched_spans(text, hit.text)
        ]
        covered = sum(span.text_end - span.text_start for span in spans) / len(text.strip())
        score = DENSE_WEIGHT * max(similarity, 0.0) + (1 - DENSE_WEIGHT) * min(covered, 1.0)
        supports.append(Support(hit, score, spans))
    supports.sort(key=lambda s: -s.support)
    return supports[:k]


# --- sentences ------------------------------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that end in a full stop without ending a sentence, in legal and academic text
# (lower case, without their final full stop): "cl. 12.2", "s. 4(2)", "e.g. the", "et al. (2021)".
ABBREVIATIONS = _word_set(
    """al art arts c ca cf ch cl cll dr e.g ed eds eq eqs esp fig figs i.e ibid id jr mr mrs ms n
    nn no nos op p para paras pp prof pt r reg regs s sch sec secs sr ss st subs v viz vol vols
    vs"""
)
# A candidate end: terminal punctuation, any closing quotes or brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_NEXT_STARTS_SENTENCE = re.compile(r"\s+(?:\([a-z0-9]{1,4}\)|[\"'“‘(\[]*[A-Z0-9])")
_NEXT_STARTS_UNCASED = re.compile(r"\s+[\"'“‘(\[]*\w")  # text with no capitals (uncased models)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_ENUMERATOR = re.compile(r"\(?(?:\d+(?:\.\d+)*|[a-z]|[ivxlc]+)\)?$", re.IGNORECASE)


def _ends_sentence(text: str, end: re.Match, cased: bool) -> bool:
    """Whether the punctuation matched by `end` closes a sentence (not "cl." nor "J.")."""
    starts = _NEXT_STARTS_SENTENCE if cased else _NEXT_STARTS_UNCASED
    if not starts.match(text, end.end()):
        return False
    if not end.group().startswith("."):
        return True
    if _opens_clause(text, end.start()):
        return False
    word = _WORD_BEFORE.search(text, 0, end.start())
    if word is None:
        return True
    token = word.group(1).lower()
    return token not in ABBREVIATIONS and not (len(token) == 1 and text[word.start()].isupper())


def _opens_clause(text: str, dot: int) -> bool:
    """Whether the word before `dot` is an enumerator opening a clause ("12. Termination",
    "(b). ", "iv. "): one that starts the text, a line, or follows another sentence's end."""
    enumerator = _ENUMERATOR.search(text, max(0, dot - 16), dot)
    if enumerator is None:
        return False
    before = text[: enumerator.start()].rstrip(" \t")
    return not before or before.endswith(("\n", ".", "!", "?", ":", ";"))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, stripped of surrounding whitespace.

    A sentence ends at terminal punctuation followed by a capital, a digit or an opening quote or
    bracket (any word, in text with no capitals at all, as uncased models write), unless the word
    before the full stop is a known abbreviation, an initial or a clause number; a blank line
    always ends one. Clause numbers such as "12.2" never split, having no space after the
    dot. A hand-written rule rather than a package: the one candidate (pysbd) is not installed,
    unmaintained since 2021, and its character offsets are known to drift.
    """
    cuts = {0, len(text)}
    cuts.update(m.end() for m in _PARAGRAPH_BREAK.finditer(text))
    cased = text != text.lower()
    cuts.update(m.end() for m in _SENTENCE_END.finditer(text) if _ends_sentence(text, m, cased))
    ordered = sorted(cuts)
    spans = []
    for start, end in zip(ordered, ordered[1:], strict=False):
        piece = text[start:end]
        stripped = piece.strip()
        if _WORD.search(stripped):
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, left + len(stripped)))
    return spans


# --- sentence support -----------------------------------------------------------------------

# Function words and drafting boilerplate: words that two unrelated sentences share by chance.
STOPWORDS = _word_set(
    """a about above after again against all also an and any are as at be because been before
    being below between both but by can could did do does doing down during each either few for
    from further had has have having he her here hers him his how i if in into is it its itself
    may me might more most must my neither no nor not of off on once only or other our ours out
    over own same shall she should so some such than that the their theirs them then there these
    they this those through to too under until up upon very was we were what when where whether
    which while who whom why will with within without would you your"""
)


def content_words(text: str) -> set[str]:
    """The stems of `text`'s words other than stop words (numbers kept: "30" is content)."""
    return {stem(word) for word in _words(text)[0] if word not in STOPWORDS}


def stem(word: str) -> str:
    """A crude stem, enough for overlap: "terminate", "termination" -> "termi"; "parties" ->
    "party"."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    return word[:5]


def word_overlap(sentence: str, passage: str) -> float:
    """The share of `sentence`'s content words that `passage` contains (0 when it has none)."""
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


# Set on the sample library (30 sentences copied from its pages, 16 light paraphrases, 16 unrelated
# sentences: copied 0.63-1.00, paraphrased 0.45-0.87, unrelated 0.02-0.30), then checked on 48
# real PDFs it never saw (bench/attribution_eval.py): there, 0.38 let 4.9% of unrelated sentences
# and 16% of sentences whose source was withheld pass as supported, on shared common words; 0.42
# halves both (2.5%, 8.4%) and still supports 153 of 154 copied sentences and all 24 paraphrases
# (lowest 0.5), with the samples' lowest paraphrase (0.45) above it.
SUPPORTED_AT = 0.42
SENTENCE_CANDIDATES = 5  # passages scored per sentence


@dataclass(frozen=True)
class SentenceCitation:
    """A passage that supports one sentence, and the span of its page quoted for it."""

    hit: SearchHit
    support: float
    quote_start: int  # in the page text: the passage's sentence that best matches
    quote_end: int
    spans: list[MatchedSpan]  # verbatim runs shared by the sentence and the quote

    def quote(self) -> str:
        offset = self.hit.char_start
        return self.hit.text[self.quote_start - offset : self.quote_end - offset]

    def to_json(self) -> dict:
        hit = self.hit.to_json()
        del hit["text"], hit["score"]  # the quote is what a sentence's citation shows
        return {
            **hit,
            "support": round(self.support, 4),
            "quote": {"start": self.quote_start, "end": self.quote_end, "text": self.quote()},
            "spans": [
                {"text": [s.text_start, s.text_end], "chunk": [s.page_start, s.page_end]}
                for s in self.spans
            ],
        }


@dataclass(frozen=True)
class SentenceSupport:
    start: int  # in the attributed text
    end: int
    text: str
    support: float  # the best candidate's, cited or not
    citations: list[SentenceCitation]  # those at or above `SUPPORTED_AT`, strongest first

    @property
    def supported(self) -> bool:
        return bool(self.citations)

    def to_json(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "supported": self.supported,
            "support": round(self.support, 4),
            "citations": [c.to_json() for c in self.citations],
        }


def sentences_to_records(sentences: list[SentenceSupport]) -> list[dict]:
    """`sentences` whole (the cited passages' text included), for storing with a draft."""
    return [asdict(sentence) for sentence in sentences]


def sentences_from_records(records: list[dict]) -> list[SentenceSupport]:
    return [
        SentenceSupport(
            start=r["start"],
            end=r["end"],
            text=r["text"],
            support=r["support"],
            citations=[
                SentenceCitation(
                    hit=SearchHit(**c["hit"]),
                    support=c["support"],
                    quote_start=c["quote_start"],
                    quote_end=c["quote_end"],
                    spans=[MatchedSpan(**span) for span in c["spans"]],
                )
                for c in r["citations"]
            ],
        )
        for r in records
    ]


def sentence_support(cosine: float, overlap: float) -> float:
    """Support of a sentence by a passage: the mean of their cosine (floored at 0) and the share
    of the sentence's content words in the passage's best-matching sentence."""
    return 0.5 * max(cosine, 0.0) + 0.5 * overlap


def _cite(sentence: str, sentence_start: int, hit: SearchHit, cosine: float) -> SentenceCitation:
    """`hit` as a citation of `sentence`: its best-matching sentence quoted, verbatim runs
    located on both sides."""
    candidates = split_sentences(hit.text) or [(0, len(hit.text))]
    overlaps = [word_overlap(sentence, hit.text[a:b]) for a, b in candidates]
    best = max(range(len(candidates)), key=overlaps.__getitem__)
    q0, q1 = candidates[best]
    page = hit.char_start + q0
    spans = [
        MatchedSpan(sentence_start + a0, sentence_start + a1, page + b0, page + b1)
        for a0, a1, b0, b1 in matched_spans(sentence, hit.text[q0:q1])
    ]
    support = sentence_support(cosine, overlaps[best])
    return SentenceCitation(hit, support, page, page + q1 - q0, spans)


def attribute_sentences(
    library: Library, text: str, k: int = 2, doc_ids: list[str] | None = None
) -> list[SentenceSupport]:
    """Every sentence of `text` with up to `k` passages that support it (none: unsupported).

    The sentences are searched in one batch and embedded in one more (the search does not hand
    back its query vectors), so a section costs two embedding calls whatever its length."""
    bounds = split_sentences(text)
    if not bounds:
        return []
    sentences = [text[a:b] for a, b in bounds]
    found = library.search_many(sentences, k=SENTENCE_CANDIDATES, doc_ids=[doc_ids] * len(bounds))
    queries = library.embedder.embed_queries(sentences)
    stored = library.vectors.vectors_of(list({hit.chunk_id for hits in found for hit in hits}))
    results = []
    for (start, end), sentence, hits, query in zip(bounds, sentences, found, queries, strict=True):
        cited = sorted(
            (_cite(sentence, start, hit, _cosine(query, stored.get(hit.chunk_id))) for hit in hits),
            key=lambda c: -c.support,
        )
        best = cited[0].support if cited else 0.0
        supporting = _distinct(c for c in cited if c.support >= SUPPORTED_AT)[:k]
        results.append(SentenceSupport(start, end, sentence, best, supporting))
    return results


def _distinct(citations: Iterable[SentenceCitation]) -> list[SentenceCitation]:
    """`citations` without repeats of one quote (neighbouring chunks share a sentence)."""
    seen: set[tuple[str, int, int, int]] = set()
    kept = []
    for citation in citations:
        key = (
            citation.hit.doc_id,
            citation.hit.page_index,
            citation.quote_start,
            citation.quote_end,
        )
        if key not in seen:
            seen.add(key)
            kept.append(citation)
    return kept


def _cosine(query: np.ndarray, vector: np.ndarray | None) -> float:
    return float(np.dot(query, vector)) if vector is not None else 0.0
