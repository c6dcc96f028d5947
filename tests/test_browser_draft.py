"""The Draft and Drafts tabs in a real browser: `python app.py` driven by Playwright (Chromium).

One app process serves the whole module: it is started on a temp library into which the sample
PDFs (and one PDF whose text is HTML and script) were ingested by the CLI beforehand, with the
tiny test model as the default denoiser (PALIMPSEST_MODEL). Each test opens its own page and
starts its own small draft (6 steps of 24 tokens), so the tests do not depend on one another.
Screenshots of the main states go to `test-artifacts/draft-*.png` (git-ignored).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docx
import pytest
from browser_support import (
    STARTUP_S,
    AppServer,
    chromium,
    explained,
    running_app,
    save_screenshot,
)
from conftest import REPO_ROOT, SAMPLE_PDFS, cli_env
from helpers import pdf_bytes
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.browser

WAIT_MS = 60_000  # one small draft or one library operation, generous for a loaded CPU
VIEWPORT = {"width": 1366, "height": 1000}
STEPS, TOKENS = 6, 24  # small drafts: a 3-block draft takes a second or two on a CPU

SAMPLE_NAMES = {path.name for path in SAMPLE_PDFS}
PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"
INJECTION_NAME = "injection-<img src=x onerror=alert(3)>.pdf"
INJECTION_WORDS = "quokka marmalade zeppelin"  # rare words that make search find the PDF
INJECTION_TEXT = (
    f"Injection probe: {INJECTION_WORDS}.\n{PAYLOAD}\n"
    f"The {INJECTION_WORDS} clause\n{PAYLOAD}\nmust render as text."
)
KNOWN_NAMES = SAMPLE_NAMES | {INJECTION_NAME}
HEADINGS = ["Termination for convenience", "Termination for cause", "Effect of termination"]
COPIED = (  # clause 5.1 of the sample services agreement, word for word
    "Either party may terminate this Agreement, or any Statement of Work, for convenience by "
    "giving the other party not less than ninety (90) days' written notice."
)


# -- the app -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("browser-draft")
    library_dir = root / "library"
    injection = root / "upload" / INJECTION_NAME
    injection.parent.mkdir()
    injection.write_bytes(pdf_bytes([INJECTION_TEXT]))
    env = cli_env(
        library_dir,
        PALIMPSEST_MODEL=str(tiny_model),
    )
    ingest = subprocess.run(
        [sys.executable, "-m", "engine", "ingest", "sample_docs", str(injection)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert ingest.stdout.count("added:") == len(SAMPLE_PDFS) + 1, ingest.stdout

    with running_app(root, env) as server:
        yield server


@pytest.fixture(scope="module")
def browser(app_server: AppServer) -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def new_page(context: BrowserContext, server: AppServer) -> Page:
    """A page on the app, loaded, that records script errors and fails on any dialog."""
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.errors = errors  # type: ignore[attr-defined]
    page.dialogs = dialogs  # type: ignore[attr-defined]
    with explained(server, page):
        load(page, server)
    return page


def load(page: Page, server: AppServer) -> None:
    page.goto(server.url, wait_until="domcontentloaded")
    expect(page.locator("#documents-table")).to_be_visible(timeout=WAIT_MS)


@pytest.fixture
def page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = new_page(context, app_server)
        yield page
        assert page.dialogs == [], page.dialogs  # type: ignore[attr-defined]
    finally:
        context.close()


# -- driving the screen ------------------------------------------------------------------------


def screenshot(page: Page, name: str, full_page: bool = True) -> None:
    save_screenshot(page, f"draft-{name}", full_page)


def open_tab(page: Page, tab_id: str) -> None:
    page.locator(f"button[role=tab][data-tab-id={tab_id}]").click()


def set_slider(page: Page, label: str, value: int) -> None:
    """Type a value into a slider's number box. The settings mount when their accordion first
    opens, and a value typed while they mount can be reset: type again until it holds."""
    box = page.get_by_label(f"number input for {label}")
    track = page.get_by_label(f"range slider for {label}")
    for _ in range(5):
        box.fill(str(value))
        box.press("Enter")
        page.wait_for_timeout(200)
        if box.input_value() == str(value) and track.input_value() == str(value):
            return
    raise AssertionError(f"{label} stays at {box.input_value()}, not {value}")


def record_statuses(page: Page) -> None:
    """From now on, remember every text the status line and the section headers show: a run can
    pass through its states faster than a test polls them."""
    page.evaluate(
        """() => {
            window.__seen = [];
            if (window.__observer) window.__observer.disconnect();
            const note = () => {
                const status = document.querySelector('#draft-status');
                const text = status ? status.innerText.trim() : '';
                const headers = [...document.querySelectorAll('.doc-meta')]
                    .map(h => h.innerText.replace(/\\s+/g, ' ').trim()).join(' | ');
                const last = window.__seen[window.__seen.length - 1];
                if (!last || last.status !== text || last.headers !== headers)
                    window.__seen.push({status: text, headers, at: Date.now()});
            };
            window.__observer = new MutationObserver(note);
            window.__observer.observe(document.body,
                {subtree: true, childList: true, characterData: true});
        }"""
    )


def seen(page: Page) -> list[dict]:
    return page.evaluate("() => window.__seen || []")


def run_and_wait(page: Page, action: Callable[[], None], final: str = "Done.") -> list[dict]:
    """Do `action` (something that starts a run) and wait until the run went through "Drafting"
    and the status line reads `final`; returns the states seen on the way."""
    record_statuses(page)
    action()
    page.wait_for_function(
        """(final) => (window.__seen || []).some(s => s.status.startsWith('Drafting'))
            && document.querySelector('#draft-status').innerText.includes(final)""",
        arg=final,
        timeout=WAIT_MS,
    )
    return seen(page)


def wait_for_status(page: Page, text: str) -> None:
    expect(page.locator("#draft-status")).to_contain_text(text)


def fill_draft(
    page: Page, instruction: str, headings: list[str], steps: int = STEPS, tokens: int = TOKENS
) -> None:
    """Fill in the Draft tab: settings, instruction and sections (one heading per line)."""
    open_tab(page, "draft")
    toggle = page.locator("#settings > button").first
    toggle.click()
    set_slider(page, "Steps per section", steps)
    set_slider(page, "Tokens per section", tokens)
    toggle.click()  # fold the settings away again
    page.locator("#instruction textarea").fill(instruction)
    page.locator("#sections textarea").fill("\n".join(headings))


def start_draft(page: Page, instruction: str, headings: list[str], **settings: int) -> list[dict]:
    """Fill in the Draft tab, press Start and wait until the draft is done."""
    fill_draft(page, instruction, headings, **settings)
    return run_and_wait(page, lambda: page.locator("#start").click())


SECTION_TEXT = """(box) => {
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT, {acceptNode: n =>
        n.parentElement.closest('[data-skip]') ? NodeFilter.FILTER_REJECT
                                                : NodeFilter.FILTER_ACCEPT});
    let text = '';
    while (walker.nextNode()) text += walker.currentNode.data;
    return text;
}"""


def section_text(page: Page, index: int) -> str:
    """A section's text as the page shows it (tracked deletions and citation markers aside)."""
    return page.locator(f"#sec-{index}-text").evaluate(SECTION_TEXT)


def meta(page: Page, index: int):
    return page.locator(f"#sec-{index}-meta")


def select_text(page: Page, index: int, start: int, end: int) -> None:
    """Select characters [start, end) of a section's text with a DOM range, as a mouse would."""
    page.locator(f"#sec-{index}-text").evaluate(
        """(box, [start, end]) => {
            const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT, {acceptNode: n =>
                n.parentElement.closest('[data-skip]') ? NodeFilter.FILTER_REJECT
                                                        : NodeFilter.FILTER_ACCEPT});
            const range = document.createRange();
            let seen = 0, node;
            while ((node = walker.nextNode())) {
                const last = seen + node.length;
                if (seen <= start && start <= last) range.setStart(node, start - seen);
                if (seen <= end && end <= last) { range.setEnd(node, end - seen); break; }
                seen += node.length;
            }
            box.focus();
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
        }""",
        [start, end],
    )


def toolbar(page: Page, op: str):
    return page.locator(f"#selection-toolbar button[data-op={op}]")


def pinned_texts(page: Page, index: int) -> list[str]:
    """The runs of pinned text highlighted in a section."""
    return page.locator(f"#sec-{index}-text").evaluate(
        """(box) => {
            const runs = [];
            let last = null;
            for (const span of box.querySelectorAll('span.pin')) {
                if (last && last.nextSibling === span) runs[runs.length - 1] += span.textContent;
                else runs.push(span.textContent);
                last = span;
            }
            return runs;
        }"""
    )


def choose_in_drafts(page: Page, title: str) -> None:
    """Go to the Drafts tab and choose the draft titled `title` in its table."""
    open_tab(page, "drafts")
    table = page.locator("#drafts-table")
    expect(table).to_contain_text(title)
    table.locator("[role=gridcell][data-col='0']", has_text=title).first.click()
    expect(page.locator("#chosen-draft textarea")).not_to_have_value("")


def open_from_drafts(page: Page, title: str) -> None:
    """Choose the draft titled `title` in the Drafts tab and open it in the Draft tab."""
    choose_in_drafts(page, title)
    page.locator("#open-draft").click()
    expect(page.locator("button[role=tab][data-tab-id=draft]")).to_have_attribute(
        "aria-selected", "true"
    )


def replace_section_text(page: Page, index: int, text: str) -> None:
    """Type over a section's whole text in place, then save it with Ctrl+Enter."""
    box = page.locator(f"#sec-{index}-text")
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)
    page.keyboard.press("Control+Enter")
    wait_for_status(page, "Saved your edit.")


def choose_targets(page: Page, name: str) -> None:
    page.locator("#section-targets input").click()
    page.locator("#section-targets [role=option]", has_text=name).click()
    page.locator("#section-targets input").press("Escape")
    expect(page.locator("#section-targets")).to_contain_text(name)


def read_sources(page: Page) -> list[str]:
    """The documents the section in focus read, this round (the panel's first list)."""
    return [
        t.split(", p. ")[0].strip()
        for t in page.locator("#section-panel ol.read button.source").all_inner_texts()
    ]


# -- the tests -------------------------------------------------------------------------------------


def test_draft_streams_as_one_document(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        states = start_draft(
            page, "Draft the termination clauses of a services agreement.", HEADINGS
        )
        streamed = [
            s
            for s in states
            if re.search(r"Drafting… step \d+", s["status"])
            or re.search(rf"step [1-{STEPS - 1}]/{STEPS}", s["headers"])
        ]
        assert streamed, f"no intermediate step was shown: {states}"
        masked = [s for s in states if "tokens still masked" in s["headers"]]
        assert masked, "no section was ever shown partly masked"
        screenshot(page, "01-document")
        outline = page.locator(".doc-outline li")
        expect(outline).to_have_count(len(HEADINGS))
        for index, heading in enumerate(HEADINGS):
            expect(outline.nth(index)).to_have_text(heading)
            expect(page.locator(f"#sec-{index} .doc-heading")).to_contain_text(heading)
            expect(meta(page, index)).to_contain_text(f"step {STEPS}/{STEPS} · done")
            text = section_text(page, index)
            assert text.strip() and "▒" not in text
        expect(page.locator(".doc-section")).to_have_count(len(HEADINGS))
        # the first section is in focus: the panel says what it read, apart from what supports it
        panel = page.locator("#section-panel")
        expect(panel).to_contain_text("Supports this text")
        expect(panel).to_contain_text("Read by the model")
        names = read_sources(page)
        assert names and set(names) <= KNOWN_NAMES and set(names) & SAMPLE_NAMES, names
        assert page.errors == []  # type: ignore[attr-defined]


def test_pin_a_selection_rerun_and_see_the_redline(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft a clause on pinning for the services agreement.", HEADINGS)
        before = section_text(page, 0)
        words = [m.span() for m in re.finditer(r"\S+", before)]
        assert len(words) >= 6, before
        start, end = words[2][0], words[3][1]  # the third and fourth words: mid-text
        select_text(page, 0, start, end)
        expect(toolbar(page, "pin")).to_be_visible()
        screenshot(page, "02-selection-toolbar", full_page=False)
        toolbar(page, "pin").click()
        wait_for_status(page, "Pinned.")
        pins = pinned_texts(page, 0)
        assert len(pins) == 1, pins
        pinned = pins[0]
        assert before[start:end] in pinned, (pinned, before)
        offset = before.index(pinned)
        assert offset <= start < end <= offset + len(pinned)
        screenshot(page, "03-pinned")

        others = [section_text(page, 1), section_text(page, 2)]
        select_text(page, 0, start, end)
        run_and_wait(page, lambda: toolbar(page, "rerun").click())
        after = section_text(page, 0)
        assert pinned in after and pinned_texts(page, 0) == pins, (pinned, after)
        assert after != before, "the re-run changed nothing around the pin"
        assert [section_text(page, 1), section_text(page, 2)] == others
        # the change shows as tracked changes until accepted
        section = page.locator("#sec-0")
        expect(section.locator(".change-bar")).to_be_visible()
        assert section.locator("del").count() + section.locator(".ins").count() > 0
        expect(meta(page, 0)).to_contain_text("tracked change")
        screenshot(page, "04-rerun-redline")
        section.locator(".change-bar button[data-op=accept]").click()
        wait_for_status(page, "Change accepted.")
        expect(section.locator(".change-bar")).to_have_count(0)
        assert section_text(page, 0) == after


def test_keyboard_only_pin_and_rerun(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft a clause written with the keyboard.", HEADINGS)
        page.locator(".doc-outline a").nth(1).focus()
        page.keyboard.press("Enter")  # the outline's link takes the caret to section 2
        expect(page.locator("#sec-1-text")).to_be_focused()
        before = section_text(page, 1)
        page.keyboard.press("Control+Home")
        for _ in range(6):
            page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("Alt+P")
        wait_for_status(page, "Pinned.")
        pins = pinned_texts(page, 1)
        assert len(pins) == 1 and before.startswith(pins[0]), (pins, before)
        page.locator("#sec-1-text").focus()
        run_and_wait(page, lambda: page.keyboard.press("Alt+R"))
        after = section_text(page, 1)
        assert after.startswith(pins[0]) and pinned_texts(page, 1) == pins, (pins, after)
        screenshot(page, "05-keyboard")


def test_a_citation_marker_opens_its_page(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft the notice period for convenience.", HEADINGS)
        # the demo model's text is supported by nothing: give the last section a sentence of the
        # services agreement (clause 5.1), typed in place
        last = len(HEADINGS) - 1
        replace_section_text(page, last, COPIED)
        marker = page.locator(f"#sec-{last} sup.cite").first
        expect(marker).to_be_visible()
        expect(page.locator(f"#sec-{last} .change-bar")).to_be_visible()  # an edit is a change
        marker.click()
        image = page.locator("#page-image img")
        expect(image).to_be_visible()
        caption = page.locator("#page-caption")
        expect(caption).to_contain_text("services-agreement.pdf")
        expect(caption).not_to_contain_text("could not be located")
        assert image.evaluate("img => img.naturalWidth") > 100
        screenshot(page, "06-citation-page", full_page=False)
        expect(image).to_be_in_viewport(ratio=0.3)
        expect(page.locator("#section-panel")).to_contain_text("services-agreement.pdf")


def test_retarget_limits_what_a_section_reads(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft the confidentiality obligations.", HEADINGS)
        others = [section_text(page, 0), section_text(page, 2)]
        page.locator("#sec-1 .doc-heading").click()  # the section in focus
        expect(page.locator("#section-panel h3")).to_contain_text(HEADINGS[1])
        choose_targets(page, "nda.pdf")
        run_and_wait(page, lambda: page.locator("#retarget").click())
        expect(meta(page, 1)).to_contain_text("follows 1 document(s)")
        names = read_sources(page)
        assert names and set(names) == {"nda.pdf"}, names
        assert [section_text(page, 0), section_text(page, 2)] == others
        screenshot(page, "07-retargeted")


def test_edit_in_place_survives_reload(page: Page, app_server: AppServer) -> None:
    title = "Draft the edit test clauses."
    with explained(app_server, page):
        start_draft(page, title, HEADINGS)
        replace_section_text(page, 2, "either party may terminate this agreement edited by hand")
        saved = section_text(page, 2)
        assert "edited by hand" in saved

        load(page, app_server)
        open_from_drafts(page, title)
        expect(page.locator("#sec-2-text")).to_contain_text("edited by hand")
        assert section_text(page, 2) == saved
        expect(page.locator("#instruction textarea")).to_have_value(title)
        expect(page.locator("#sections textarea")).to_have_value("\n".join(HEADINGS))
        screenshot(page, "08-edited-reopened")


def test_pause_reload_step_and_resume(page: Page, app_server: AppServer) -> None:
    title = "Draft the resume test clauses."
    with explained(app_server, page):
        fill_draft(page, title, HEADINGS[:2], steps=32, tokens=32)
        record_statuses(page)
        page.locator("#start").click()
        page.wait_for_function(
            "() => document.querySelector('#draft-status').innerText.includes('Drafting… step')"
        )
        page.locator("#pause").click()
        wait_for_status(page, "Paused.")
        header = meta(page, 0)
        expect(header).to_contain_text(re.compile(r"step \d+/32"))
        paused_at = int(re.search(r"step (\d+)/32", header.inner_text()).group(1))
        assert paused_at < 32, "the draft finished before Pause took effect"
        screenshot(page, "09-paused")

        load(page, app_server)
        open_from_drafts(page, title)
        wait_for_status(page, f"Opened at step {paused_at}")
        assert "▒" in section_text(page, 0)  # still-masked positions are visible
        page.locator("#step").click()
        wait_for_status(page, f"Stopped at step {paused_at + 1}.")
        expect(header).to_contain_text(f"step {paused_at + 1}/32")
        run_and_wait(page, lambda: page.locator("#resume").click())
        expect(header).to_contain_text("step 32/32 · done")
        assert "▒" not in section_text(page, 0) + section_text(page, 1)


def test_export_docx_with_footnotes(page: Page, app_server: AppServer, tmp_path: Path) -> None:
    title = "Draft the export test clauses."
    with explained(app_server, page):
        start_draft(page, title, HEADINGS)
        replace_section_text(page, 0, COPIED)
        choose_in_drafts(page, title)
        link = page.locator("#export-links a#download-docx")
        expect(link).to_be_visible()
        with page.expect_download() as info:
            link.click()
        assert info.value.suggested_filename == "Draft the export test clauses.docx"
        path = tmp_path / "draft.docx"
        info.value.save_as(path)

    document = docx.Document(str(path))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    for heading in HEADINGS:
        assert any(heading in h for h in headings), headings
    with zipfile.ZipFile(path) as package:
        assert "word/footnotes.xml" in package.namelist()
        footnotes = package.read("word/footnotes.xml").decode("utf-8")
        body = package.read("word/document.xml").decode("utf-8")
    assert "services-agreement.pdf" in footnotes, footnotes[:2000]
    assert "<w:ins " in body and "<w:del " in body  # the edit, not yet accepted, as revisions


def test_two_sessions_draft_at_once_without_crosstalk(
    browser: Browser, app_server: AppServer
) -> None:
    jobs = [
        ("Draft a privacy notice for session one.", ["Alpha data we collect", "Alpha rights"]),
        (
            "Draft a research summary for session two.",
            ["Beta method", "Beta results", "Beta limitations"],
        ),
    ]
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in jobs]
    try:
        pages = [new_page(context, app_server) for context in contexts]
        with explained(app_server, pages[0]), explained(app_server, pages[1]):
            for page, (instruction, headings) in zip(pages, jobs, strict=True):
                fill_draft(page, instruction, headings, steps=16)
                record_statuses(page)
            for page in pages:  # both Start buttons at nearly the same time
                page.locator("#start").click()
            for page in pages:
                page.wait_for_function(
                    "() => document.querySelector('#draft-status').innerText.includes('Done.')",
                    timeout=WAIT_MS,
                )
            spans = []  # when each session was seen drafting: first "Drafting", then "Done."
            for page in pages:
                states = seen(page)
                began = [s["at"] for s in states if s["status"].startswith("Drafting")]
                ended = [s["at"] for s in states if "Done." in s["status"]]
                assert began and ended, states
                spans.append((began[0], ended[0]))
            (start_a, done_a), (start_b, done_b) = spans
            assert start_a < done_b and start_b < done_a, f"the runs did not overlap: {spans}"
            for page, (_, headings) in zip(pages, jobs, strict=True):
                other = next(h for _, h in jobs if h is not headings)
                shown = page.locator(".doc-heading").all_inner_texts()
                assert len(shown) == len(headings), shown
                for text, heading in zip(shown, headings, strict=True):
                    assert heading in text and "done" in text, shown
                assert not any(h in text for h in other for text in shown), shown
            open_tab(pages[0], "drafts")
            for instruction, _ in jobs:
                expect(pages[0].locator("#drafts-table")).to_contain_text(instruction)
            for page in pages:
                assert page.dialogs == [] and page.errors == []  # type: ignore[attr-defined]
    finally:
        for context in contexts:
            context.close()


def test_a_long_draft_stays_navigable(page: Page, app_server: AppServer) -> None:
    headings = [f"Clause {n} on the services" for n in range(1, 31)]
    with explained(app_server, page):
        start_draft(page, "Draft a long services agreement.", headings, steps=2, tokens=8)
        expect(page.locator(".doc-outline li")).to_have_count(30)
        expect(page.locator(".doc-outline li.done")).to_have_count(30)
        page.locator(".doc-outline a").nth(27).click()
        expect(page.locator("#sec-27-text")).to_be_in_viewport()
        expect(page.locator("#section-panel h3")).to_contain_text("28. Clause 28")
        screenshot(page, "10-long-draft", full_page=False)


def test_document_text_with_html_renders_as_text(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        box = page.locator("#search-box textarea, #search-box input").first
        box.fill(INJECTION_WORDS)
        page.locator("#search-button").click()
        results = page.locator("#search-results")
        expect(results).to_contain_text(INJECTION_NAME)
        expect(results).to_contain_text(PAYLOAD)
        expect(page.locator("#documents-table")).to_contain_text(INJECTION_NAME)

        start_draft(page, f"Draft the {INJECTION_WORDS} clause.", ["The injection clause"])
        choose_targets(page, "injection-")
        run_and_wait(page, lambda: page.locator("#retarget").click())
        names = read_sources(page)
        assert names and set(names) == {INJECTION_NAME}, names
        panel = page.locator("#section-panel")
        expect(panel).to_contain_text("<script>alert(1)</script>")
        panel.locator("ol.read button.source").first.click()
        expect(page.locator("#page-image img")).to_be_visible()
        expect(page.locator("#page-caption")).to_contain_text(INJECTION_NAME)
        screenshot(page, "11-injection-sources")
        page.wait_for_timeout(500)  # give any injected handler its chance to fire
        injected = page.evaluate(
            """() => [...document.querySelectorAll('img[src="x"], script')]
                .filter(e => e.tagName === 'IMG' || e.textContent.includes('alert(')).length"""
        )
        assert injected == 0
        assert page.dialogs == []  # type: ignore[attr-defined]
