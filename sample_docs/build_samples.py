"""Build the sample PDFs in this folder from the text sources in ./source.

Run from anywhere:  python sample_docs/build_samples.py

The output is deterministic: the same sources give the same bytes. After building, every file
is checked: page count, PDF page labels, and text that pypdf and pypdfium2 both extract from every
page. The exit status is 1 if any check fails.

Markup of the source files. Each marked line starts an element; an unmarked line continues the
element above it, and a blank line ends it.

    # Title            ## Heading           ### Sub-heading
    ^ centred line     * item               ** nested item
    | a | b |          table row (a table's first row is its header)
    @page              page break
    @columns           end of the full-width header; the text flows on in two columns
    @space N           N points of vertical space
    ~                  soft hyphen: where a long word may be broken across two lines

Inline <b> and <i> tags go straight to reportlab, so a literal & must be written &amp;.
"""

import io
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pypdfium2
from pypdf import PdfReader, PdfWriter
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    FrameBreak,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 2.3 * cm
FOOTER_Y = 1.3 * cm
COLUMN_GAP = 0.7 * cm
CELL_PADDING = 4
HEADER_SLACK = 12  # points below the full-width header of a two-column first page
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
TEXT_HEIGHT = PAGE_HEIGHT - 2 * MARGIN

MARKERS = (
    ("###", "subheading"),
    ("##", "heading"),
    ("#", "title"),
    ("^", "centre"),
    ("**", "item2"),
    ("*", "item"),
)
COMMANDS = {"page", "columns", "space"}
ROMAN = (
    (100, "c"),
    (90, "xc"),
    (50, "l"),
    (40, "xl"),
    (10, "x"),
    (9, "ix"),
    (5, "v"),
    (4, "iv"),
    (1, "i"),
)


@dataclass(frozen=True)
class LabelRange:
    """One PDF page-label range, in the terms of pypdf's `PdfWriter.set_page_label`."""

    first: int  # physical 0-based index of the range's first page
    style: str | None  # "/D" decimal, "/r" lower-case roman, None: the prefix alone
    prefix: str = ""
    start: int = 1


@dataclass(frozen=True)
class Sample:
    filename: str
    title: str
    pages: int  # expected page count: the explicit page breaks in the source assume it
    labels: tuple[LabelRange, ...] = ()  # empty: no /PageLabels, pages read "1", "2", ...
    two_columns: bool = False

    @property
    def source(self) -> Path:
        return SOURCES / f"{Path(self.filename).stem}.txt"

    def label(self, index: int) -> str:
        return page_label(self.labels, index)

    def expected_labels(self) -> list[str]:
        return [self.label(i) for i in range(self.pages)]


SAMPLES = (
    Sample(
        "services-agreement.pdf",
        "Master Services Agreement",
        pages=5,
        labels=(LabelRange(0, "/r"), LabelRange(1, "/D")),
    ),
    Sample("nda.pdf", "Mutual Non-Disclosure Agreement", pages=3),
    Sample(
        "data-protection-act.pdf",
        "Data Stewardship Act 2024",
        pages=5,
        labels=(LabelRange(0, None, prefix="A"), LabelRange(1, "/D")),
    ),
    Sample(
        "research-note.pdf",
        "Pinning and remasking in masked-diffusion drafting",
        pages=2,
        two_columns=True,
    ),
)


def roman(number: int) -> str:
    digits = []
    for value, numeral in ROMAN:
        count, number = divmod(number, value)
        digits.append(numeral * count)
    return "".join(digits)


def page_label(ranges: tuple[LabelRange, ...], index: int) -> str:
    """The label a PDF reader shows for physical page `index` under these ranges."""
    started = [r for r in ranges if r.first <= index]
    if not started:
        return str(index + 1)
    current = started[-1]
    number = current.start + index - current.first
    numeral = {"/D": str(number), "/r": roman(number), None: ""}[current.style]
    return current.prefix + numeral


def styles(size: float) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle(
        "body",
        fontName="Times-Roman",
        fontSize=size,
        leading=size * 1.28,
        alignment=TA_JUSTIFY,
        spaceAfter=size * 0.5,
        embeddedHyphenation=1,
    )
    heading = ParagraphStyle(
        "heading",
        parent=body,
        fontName="Times-Bold",
        fontSize=size * 1.15,
        leading=size * 1.4,
        alignment=TA_LEFT,
        spaceBefore=size * 0.7,
        keepWithNext=1,
    )
    return {
        "body": body,
        "title": ParagraphStyle(
            "title",
            parent=body,
            fontName="Times-Bold",
            fontSize=size * 1.6,
            leading=size * 1.9,
            alignment=TA_CENTER,
            spaceAfter=size,
        ),
        "heading": heading,
        "subheading": ParagraphStyle(
            "subheading", parent=heading, fontSize=size, spaceBefore=size * 0.4
        ),
        "centre": ParagraphStyle("centre", parent=body, alignment=TA_CENTER),
        "item": ParagraphStyle("item", parent=body, leftIndent=2.2 * size, firstLineIndent=-size),
        "item2": ParagraphStyle(
            "item2", parent=body, leftIndent=4.4 * size, firstLineIndent=-1.2 * size
        ),
        "cell": ParagraphStyle("cell", parent=body, alignment=TA_LEFT, spaceAfter=0),
        "header_cell": ParagraphStyle(
            "header_cell", parent=body, fontName="Helvetica-Bold", fontSize=size * 0.85
        ),
    }


def classify(line: str) -> tuple[str, str]:
    if line.startswith("@"):
        command, _, argument = line[1:].partition(" ")
        return command, argument
    if line.startswith("|"):
        return "table", line
    for marker, kind in MARKERS:
        if line.startswith(marker + " "):
            return kind, line[len(marker) + 1 :]
    return "body", line


def parse(source: str) -> list[tuple[str, str]]:
    """Split marked-up source into (kind, text) elements; a table's text is its rows, one a line."""
    elements: list[tuple[str, str]] = []
    is_open = False
    for line in (raw.strip() for raw in source.splitlines()):
        if not line:
            is_open = False
            continue
        kind, text = classify(line)
        continues = is_open and (
            (kind == "body" and elements[-1][0] not in COMMANDS | {"table"})
            or (kind == "table" and elements[-1][0] == "table")
        )
        if continues:
            last_kind, last_text = elements[-1]
            joiner = "\n" if kind == "table" else " "
            elements[-1] = (last_kind, last_text + joiner + text)
        else:
            elements.append((kind, text))
        is_open = kind not in COMMANDS
    return elements


def column_widths(
    rows: list[list[str]], style: dict[str, ParagraphStyle], width: float
) -> list[float]:
    """Each column gets its longest word plus padding, and a share of the rest by text length."""
    fonts = [style["header_cell"]] + [style["cell"]] * (len(rows) - 1)
    columns = list(zip(*rows, strict=True))
    minimum = [
        max(
            stringWidth(word, font.fontName, font.fontSize)
            for cell, font in zip(column, fonts, strict=True)
            for word in cell.split()
        )
        + 2 * CELL_PADDING
        for column in columns
    ]
    lengths = [sum(len(cell) for cell in column) for column in columns]
    spare = width - sum(minimum)
    return [m + spare * n / sum(lengths) for m, n in zip(minimum, lengths, strict=True)]


def table(rows_text: str, style: dict[str, ParagraphStyle], width: float) -> Table:
    rows = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows_text.splitlines()]
    cells = [
        [Paragraph(text, style["header_cell" if r == 0 else "cell"]) for text in row]
        for r, row in enumerate(rows)
    ]
    grid = Table(
        cells,
        colWidths=column_widths(rows, style, width),
        repeatRows=1,
        spaceBefore=4,
        spaceAfter=8,
    )
    grid.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
                ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
            ]
        )
    )
    return grid


def flowable(kind: str, text: str, style: dict[str, ParagraphStyle], width: float) -> Flowable:
    if kind == "page":
        return PageBreak()
    if kind == "columns":
        return FrameBreak
    if kind == "space":
        return Spacer(1, float(text))
    if kind == "table":
        return table(text, style, width)
    return Paragraph(text.replace("~", "\xad"), style[kind])


def draw_footer(sample: Sample, canvas: Canvas, _doc: BaseDocTemplate) -> None:
    canvas.saveState()
    canvas.setStrokeColor(colors.grey)
    canvas.setLineWidth(0.4)
    canvas.line(MARGIN, FOOTER_Y + 11, PAGE_WIDTH - MARGIN, FOOTER_Y + 11)
    canvas.setFont("Helvetica", 7.5)
    canvas.drawString(MARGIN, FOOTER_Y, f"{sample.title} — fictional sample document")
    canvas.setFont("Helvetica", 9)
    canvas.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, sample.label(canvas.getPageNumber() - 1))
    canvas.restoreState()


def column_frames(height: float, prefix: str) -> list[Frame]:
    width = (TEXT_WIDTH - COLUMN_GAP) / 2
    return [
        Frame(
            MARGIN + i * (width + COLUMN_GAP), MARGIN, width, height, 0, 0, 0, 0, id=f"{prefix}{i}"
        )
        for i in range(2)
    ]


def header_height(flowables: list[Flowable]) -> float:
    """Height of the full-width block before the `@columns` break, as laid out."""
    head = flowables[: next(i for i, f in enumerate(flowables) if f is FrameBreak)]
    return HEADER_SLACK + sum(
        f.wrap(TEXT_WIDTH, TEXT_HEIGHT)[1] + f.getSpaceBefore() + f.getSpaceAfter() for f in head
    )


def page_templates(sample: Sample, flowables: list[Flowable]) -> list[PageTemplate]:
    on_page = partial(draw_footer, sample)
    if not sample.two_columns:
        frame = Frame(MARGIN, MARGIN, TEXT_WIDTH, TEXT_HEIGHT, 0, 0, 0, 0, id="text")
        return [PageTemplate("single", [frame], onPage=on_page)]
    height = header_height(flowables)
    top = PAGE_HEIGHT - MARGIN - height
    header = Frame(MARGIN, top, TEXT_WIDTH, height, 0, 0, 0, 0, id="header")
    return [
        PageTemplate(
            "first", [header, *column_frames(TEXT_HEIGHT - height, "first")], onPage=on_page
        ),
        PageTemplate("columns", column_frames(TEXT_HEIGHT, "column"), onPage=on_page),
    ]


def story(sample: Sample) -> list[Flowable]:
    style = styles(9.5 if sample.two_columns else 10.5)
    width = (TEXT_WIDTH - COLUMN_GAP) / 2 if sample.two_columns else TEXT_WIDTH
    elements = parse(sample.source.read_text(encoding="utf-8"))
    return [flowable(kind, text, style, width) for kind, text in elements]


def render(sample: Sample) -> bytes:
    flowables = story(sample)
    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        invariant=1,
        pageCompression=1,
        title=sample.title,
        author="Palimpsest sample documents",
        subject="Fictional document written for testing Palimpsest",
    )
    doc.addPageTemplates(page_templates(sample, flowables))
    first = [NextPageTemplate("columns")] if sample.two_columns else []
    doc.build(first + flowables)
    return buffer.getvalue()


def with_page_labels(pdf: bytes, ranges: tuple[LabelRange, ...]) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    ends = [r.first - 1 for r in ranges[1:]] + [len(writer.pages) - 1]
    for label_range, last in zip(ranges, ends, strict=True):
        writer.set_page_label(
            label_range.first,
            last,
            style=label_range.style,
            prefix=label_range.prefix or None,
            start=label_range.start,
        )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def build(sample: Sample) -> Path:
    pdf = render(sample)
    if sample.labels:
        pdf = with_page_labels(pdf, sample.labels)
    path = HERE / sample.filename
    path.write_bytes(pdf)
    return path


def problems(path: Path, sample: Sample) -> list[str]:
    """What is wrong with a built file: page count, labels, or a page without text."""
    reader = PdfReader(path)
    pdfium = pypdfium2.PdfDocument(path)
    found = []
    if len(reader.pages) != sample.pages:
        found.append(f"{len(reader.pages)} pages, expected {sample.pages}")
    if list(reader.page_labels) != sample.expected_labels():
        found.append(f"labels {reader.page_labels}, expected {sample.expected_labels()}")
    for i, page in enumerate(reader.pages):
        if not page.extract_text().strip():
            found.append(f"no text on page {i} (pypdf)")
        if not pdfium[i].get_textpage().get_text_range().strip():
            found.append(f"no text on page {i} (pypdfium2)")
    pdfium.close()
    return found


def main() -> int:
    failed = False
    for sample in SAMPLES:
        path = build(sample)
        labels = PdfReader(path).page_labels
        size = f"{path.stat().st_size / 1024:.1f} KiB"
        print(f"{sample.filename:24} {len(labels)} pages  labels {', '.join(labels):14} {size}")
        for problem in problems(path, sample):
            print(f"  {sample.filename}: {problem}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
