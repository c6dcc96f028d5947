"""Where the passages behind one section disagree: figures, dates, durations, money, percentages.

Precedents often differ on exactly the values a drafter must choose between ("thirty (30) days'
written notice" in one, "sixty (60) days'" in another), and a model reading both may pick either.
No language model is needed to see it: every quantity in a passage is found by pattern, its value
normalised (number words to numbers, durations to days, dates to ISO, money to an amount in a
currency, a count to the thing counted: "three (3) members"), and described by the content words
around it in its sentence; numbers that refer ("clause 12", "s. 4") are not figures. Two passages
from different documents conflict when they hold quantities of the same kind and unit, in the same
context (enough shared words around them), with different values. Quantities inside one document
are not compared: a document that gives two periods is usually describing two provisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from itertools import combinations

from engine.attribution import STOPWORDS, content_words, split_sentences, stem
from engine.search_hit import SearchHit

CONTEXT_BEFORE = 8  # words of the sentence before a quantity that describe it
CONTEXT_AFTER = 4
MIN_SHARED = 2  # context words two quantities must share to be "about the same thing"
MIN_JACCARD = 0.25
SAME_VALUE = 0.03  # relative difference under which two values agree ("one month", "30 days")

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_DAYS_IN = {"day": 1, "week": 7, "month": 30, "year": 365}
_CURRENCIES = {"£": "GBP", "$": "USD", "€": "EUR", "gbp": "GBP", "usd": "USD", "eur": "EUR"}
_CURRENCY_WORDS = {"pounds": "GBP", "dollars": "USD", "euros": "EUR"}
_NOT_CONTEXT = frozenset(
    [*_MONTHS, *_DAYS_IN, *(f"{unit}s" for unit in _DAYS_IN), *_CURRENCY_WORDS, "per", "cent"]
)
_WORD = re.compile(r"[^\W\d_][\w’']*")

_WORD_NUMBER = (
    r"(?:(?:" + "|".join(sorted([*_UNITS, *_SCALES], key=len, reverse=True)) + r")"
    r"(?:[\s-]+(?:and[\s-]+)?(?=[a-z]))?)+"
)
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUMBER = rf"(?i:(?P<number>{_DIGITS}|\b{_WORD_NUMBER}\b)(?:\s*\((?P<digits>{_DIGITS})\))?)"
_MONTH = r"(?P<month>" + "|".join(_MONTHS) + r")"
_DATE = re.compile(
    rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}\s+(?P<year>\d{{4}})\b"
    rf"|\b{_MONTH.replace('month', 'month2')}\s+(?P<day2>\d{{1,2}}),?\s+(?P<year2>\d{{4}})\b"
    r"|\b(?P<iso>\d{4}-\d{2}-\d{2})\b",
    re.IGNORECASE,
)
_DURATION = re.compile(
    rf"{_NUMBER}\s*(?:(?P<kind>business|working|calendar|clear)\s+|(?:further|consecutive)\s+)?"
    r"(?P<unit>day|week|month|year)s?\b(?:['’]s?)?",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"{_NUMBER}\s*(?:%|per\s*cent\b|percent\b)", re.IGNORECASE)
_SCALE = r"(?i:\s*(?P<scale>million|billion|m|bn)\b)?"
_MONEY_SYMBOL = re.compile(rf"(?P<symbol>[£$€]|\b(?:GBP|USD|EUR)\s?)\s*{_NUMBER}{_SCALE}", re.I)
_MONEY_NAMED = re.compile(  # "2,000,000 Kestrel dollars", "five million pounds"
    rf"{_NUMBER}{_SCALE}\s+(?P<name>(?:[A-Z]\w+\s+)?(?:pounds|dollars|euros))\b"
)


_COUNT = re.compile(rf"{_NUMBER}\s+(?P<noun>[a-z][a-z-]+)")  # "three (3) members", "48 tasks"
# Words before a number that make it a reference, not a figure: "clause 12 states", "s. 4 of".
_REFERENCES = frozenset((
    "annex", "appendix", "art", "article", "articles", "chapter", "cl", "clause", "clauses", "fig",
    "figure", "item", "no", "p", "page", "para", "paragraph", "part", "pp", "reg", "regulation",
    "rule", "s", "schedule", "section", "sections", "table",
))  # fmt: skip


@dataclass(frozen=True)
class Quantity:
    kind: str  # "date", "duration", "money", "percentage" or "count"
    unit: str  # what the value counts: "day", "business day", "GBP", "%", "date", "member"
    value: float | str  # days for durations, an ISO string for dates
    start: int  # in the passage text
    end: int
    text: str
    context: frozenset[str]  # content-word stems around it in its sentence

    def same_value(self, other: Quantity) -> bool:
        if isinstance(self.value, str) or isinstance(other.value, str):
            return self.value == other.value
        larger = max(abs(self.value), abs(other.value))
        return larger == 0 or abs(self.value - other.value) <= SAME_VALUE * larger


@dataclass(frozen=True)
class Conflict:
    """Two passages from different documents that give different values for one thing."""

    kind: str
    about: list[str]  # the context words both share
    first: tuple[SearchHit, Quantity]
    second: tuple[SearchHit, Quantity]

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "about": self.about,
            "values": [_side_json(*self.first), _side_json(*self.second)],
        }


def _side_json(hit: SearchHit, quantity: Quantity) -> dict:
    return {
        "doc_id": hit.doc_id,
        "filename": hit.filename,
        "page_index": hit.page_index,
        "page_label": hit.page_label,
        "chunk_id": hit.chunk_id,
        "text": quantity.text,
        "value": quantity.value,
        "unit": quantity.unit,
        "start": hit.char_start + quantity.start,  # in the page text, like citation spans
        "end": hit.char_start + quantity.end,
    }


# --- numbers --------------------------------------------------------------------------------


def parse_number(text: str) -> float | None:
    """ "30", "2,000,000", "99.5", "thirty-six", "two hundred and fifty" as numbers."""
    cleaned = text.replace(",", "").strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return float(cleaned)
    total, current = 0, 0
    for word in re.findall(r"[a-z]+", cleaned):
        if word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total, current = total + max(current, 1) * _SCALES[word], 0
        elif word != "and":
            return None
    return float(total + current)


def _number(match: re.Match, name: str = "number") -> float | None:
    """The number a match names; the figure in brackets wins ("thirty (30)")."""
    digits = match.groupdict().get("digits")
    return parse_number(digits or match.group(name))


# --- quantities -----------------------------------------------------------------------------


def extract_quantities(text: str) -> list[Quantity]:
    """The dates, durations, amounts of money, percentages and counts of things in `text`, each
    with its context; where two overlap, the one that starts first (then the longer) is kept."""
    sentences = split_sentences(text) or [(0, len(text))]
    found = [*_dates(text), *_durations(text), *_percentages(text), *_money(text), *_counts(text)]
    found.sort(key=lambda item: (item[0], -item[1]))
    quantities, taken = [], -1
    for start, end, kind, unit, value in found:
        if start < taken:  # inside a longer quantity already kept ("30 days" of "1 May 2024")
            continue
        taken = end
        sentence = next(((a, b) for a, b in sentences if a <= start < b), (0, len(text)))
        context = _context(text, sentence, start, end)
        quantities.append(Quantity(kind, unit, value, start, end, text[start:end], context))
    return quantities


Found = tuple[int, int, str, str, float | str]  # start, end, kind, unit, value


def _dates(text: str) -> list[Found]:
    found = []
    for match in _DATE.finditer(text):
        iso = _iso_date(match)
        if iso is not None:
            found.append((match.start(), match.end(), "date", "date", iso))
    return found


def _iso_date(match: re.Match) -> str | None:
    if match.group("iso"):
        parts = [int(p) for p in match.group("iso").split("-")]
    else:
        month = (match.group("month") or match.group("month2")).lower()
        day = match.group("day") or match.group("day2")
        year = match.group("year") or match.group("year2")
        parts = [int(year), _MONTHS.index(month) + 1, int(day)]
    try:
        return date(*parts).isoformat()
    except ValueError:
        return None


def _durations(text: str) -> list[Found]:
    found = []
    for match in _DURATION.finditer(text):
        number = _number(match)
        if number is None:
            continue
        unit = match.group("unit").lower()
        working = (match.group("kind") or "").lower() in ("business", "working")
        if working:  # business days are not calendar days: kept apart, never converted
            found.append((match.start(), match.end(), "duration", "business day", number))
        else:
            found.append((match.start(), match.end(), "duration", "day", number * _DAYS_IN[unit]))
    return found


def _percentages(text: str) -> list[Found]:
    found = []
    for match in _PERCENT.finditer(text):
        number = _number(match)
        if number is not None:
            found.append((match.start(), match.end(), "percentage", "%", number))
    return found


def _money(text: str) -> list[Found]:
    found = []
    for match in [*_MONEY_SYMBOL.finditer(text), *_MONEY_NAMED.finditer(text)]:
        number = _number(match)
        if number is None:
            continue
        scale = (match.group("scale") or "").lower()
        amount = number * {"m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}.get(scale, 1)
        found.append((match.start(), match.end(), "money", _currency(match), amount))
    return found


def _currency(match: re.Match) -> str:
    """ISO code for a symbol or a plain "pounds"; a named one ("Kestrel dollars") as written."""
    if match.groupdict().get("symbol"):
        return _CURRENCIES[match.group("symbol").strip().lower()]
    name = " ".join(match.group("name").split())
    return _CURRENCY_WORDS.get(name.lower(), name)


def _counts(text: str) -> list[Found]:
    found = []
    for match in _COUNT.finditer(text):
        noun = match.group("noun")
        previous = re.findall(r"\w+", text[max(0, match.start() - 20) : match.start()])
        if previous and previous[-1].lower() in _REFERENCES:
            continue
        if noun in STOPWORDS or not _describes(noun):
            continue
        number = _number(match)
        if number is not None:
            singular = noun if noun.endswith("ss") else noun.removesuffix("s")
            found.append((match.start(), match.end(), "count", stem(singular), number))
    return found


def _context(text: str, sentence: tuple[int, int], start: int, end: int) -> frozenset[str]:
    """Content-word stems near the quantity in its sentence; numbers, months and units, which
    are values rather than what they measure, left out."""
    before = [w for w in _WORD.findall(text[sentence[0] : start]) if _describes(w)]
    after = [w for w in _WORD.findall(text[end : sentence[1]]) if _describes(w)]
    return frozenset(content_words(" ".join(before[-CONTEXT_BEFORE:] + after[:CONTEXT_AFTER])))


def _describes(word: str) -> bool:
    lowered = word.lower()
    return not (lowered in _NOT_CONTEXT or word[0].isdigit() or parse_number(lowered) is not None)


# --- conflicts ------------------------------------------------------------------------------


def find_conflicts(passages: list[SearchHit]) -> list[Conflict]:
    """Pairs of `passages` from different documents whose values for the same kind of quantity,
    in the same context, differ; each pair of quantities reported once."""
    unique = list({hit.chunk_id: hit for hit in passages}.values())
    quantities = {hit.chunk_id: extract_quantities(hit.text) for hit in unique}
    conflicts, seen = [], set()
    for one, two in combinations(unique, 2):
        if one.doc_id == two.doc_id:
            continue
        for a in quantities[one.chunk_id]:
            for b in quantities[two.chunk_id]:
                shared = _shared_context(a, b)
                if shared is None or a.same_value(b):
                    continue
                key = _place(one, a), _place(two, b)
                if key not in seen:
                    seen.add(key)
                    conflicts.append(Conflict(a.kind, sorted(shared), (one, a), (two, b)))
    return conflicts


def _shared_context(a: Quantity, b: Quantity) -> frozenset[str] | None:
    """The context words `a` and `b` share when they measure the same thing, else None."""
    if (a.kind, a.unit) != (b.kind, b.unit):
        return None
    shared = a.context & b.context
    union = a.context | b.context
    if len(shared) < MIN_SHARED or len(shared) < MIN_JACCARD * len(union):
        return None
    return shared


def _place(hit: SearchHit, quantity: Quantity) -> tuple[str, int, int]:
    """Where a quantity is on its page: overlapping chunks hold the same one twice."""
    return hit.doc_id, hit.page_index, hit.char_start + quantity.start
