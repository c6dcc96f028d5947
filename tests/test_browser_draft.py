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
    """From now on, remember every text the status line and the block headers show: a run can
    pass through its states faster than a test polls them."""
    page.evaluate(
        """() => {
            window.__seen = [];
            if (window.__observer) window.__observer.disconnect();
            const note = () => {
                const status = document.querySelector('#draft-status');
                const text = status ? status.innerText.trim() : '';
                const headers = [...document.querySelectorAll('[id^=block-][id$=-header]')]
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
    """Do `action` (a click that starts a run) and wait until the run went through "Drafting"
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


def fill_draft(
    page: Page, instruction: str, headings: list[str], steps: int = STEPS, tokens: int = TOKENS
) -> None:
    """Fill in the Draft tab: settings, instruction and sections (one heading per line)."""
    open_tab(page, "draft")
    toggle = page.locator("#settings > button").first
    toggle.click()
    set_slider(page, "Steps per block", steps)
    set_slider(page, "Tokens per block", tokens)
    toggle.click()  # fold the settings away again
    page.locator("#instruction textarea").fill(instruction)
    page.locator("#sections textarea").fill("\n".join(headings))


def start_draft(page: Page, instruction: str, headings: list[str], **settings: int) -> list[dict]:
    """Fill in the Draft tab, press Start and wait until the draft is done."""
    fill_draft(page, instruction, headings, **settings)
    return run_and_wait(page, lambda: page.locator("#start").click())


def block_text(page: Page, index: int) -> str:
    return page.locator(f"#block-{index}-text textarea").input_value()


def source_names(page: Page, index: int) -> list[str]:
    cells = page.locator(f"#block-{index}-sources [role=gridcell][data-col='0']")
    return [text.strip() for text in cells.all_inner_texts()]


def dropdown_options(page: Page, elem_id: str) -> list[str]:
    """The choices of a dropdown, read by opening it (and closing it again)."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=option]")
    texts = [text.strip() for text in options.all_inner_texts()]
    page.locator(f"#{elem_id} input").press("Escape")
    expect(options).to_have_count(0)
    return texts


def select_text(page: Page, index: int, start: int, end: int) -> None:
    """Select characters [start, end) of a block's text as a user would, so Gradio hears it."""
    page.locator(f"#block-{index}-text textarea").evaluate(
        """(area, [start, end]) => {
            area.focus();
            area.setSelectionRange(start, end);
            area.dispatchEvent(new Event('select', {bubbles: true}));
        }""",
        [start, end],
    )


def pin_selection(page: Page, index: int, start: int, end: int) -> list[str]:
    """Select and pin; returns the pinned passages listed for the block. The select event and
    the click are separate requests, so a click that beat the selection is retried."""
    answered = (
        """() => (window.__seen || []).some(s => /Saved\\.|select some text/.test(s.status))"""
    )
    for _ in range(5):
        select_text(page, index, start, end)
        page.wait_for_timeout(300)
        record_statuses(page)  # the answer to this click, not a message left by an earlier one
        page.locator(f"#block-{index}-pin").click()
        page.wait_for_function(answered)
        if "Saved." in page.locator("#draft-status").inner_text():
            return dropdown_options(page, f"block-{index}-pins")
    raise AssertionError(f"the selection never reached the app: {seen(page)}")


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


def confidence_layout(page: Page, index: int) -> tuple[int, list[str]]:
    """From the confidence view: how many token spans precede the first pinned one, and the
    texts of the pinned spans (pinned tokens are styled with an underline)."""
    return page.locator(f"#block-{index}-confidence").evaluate(
        """(box) => {
            const spans = [...box.querySelectorAll('.confidence-view span')];
            const pinned = spans.filter(s => s.style.textDecoration.includes('underline'));
            return [spans.indexOf(pinned[0]), pinned.map(s => s.textContent)];
        }"""
    )


# -- the tests -------------------------------------------------------------------------------------


def test_draft_streams_blocks_to_completion_with_sources(page: Page, app_server: AppServer) -> None:
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
        screenshot(page, "01-done")
        for index, heading in enumerate(HEADINGS):
            header = page.locator(f"#block-{index}-header")
            expect(header).to_contain_text(heading)
            expect(header).to_contain_text(f"step {STEPS}/{STEPS} · done")
            assert block_text(page, index).strip()
            assert "▒" not in block_text(page, index)
            names = source_names(page, index)
            assert names, f"block {index} lists no sources"
            assert set(names) <= KNOWN_NAMES, names
            assert set(names) & SAMPLE_NAMES, names
        expect(page.locator("#block-3")).to_be_hidden()
        assert page.errors == []  # type: ignore[attr-defined]


def test_pinned_text_survives_a_rerun(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft a clause on pinning for the services agreement.", HEADINGS)
        before = block_text(page, 0)
        words = [m.span() for m in re.finditer(r"\S+", before)]
        assert len(words) >= 6, before
        start, end = words[2][0], words[3][1]  # the third and fourth words: mid-text
        pins = pin_selection(page, 0, start, end)
        assert len(pins) == 1, pins
        pinned = pins[0].strip("“”")
        assert before[start:end] in pinned or pinned in before, (pinned, before)
        offset = before.index(pinned)
        assert offset <= start < end <= offset + len(pinned)
        page.locator("#block-0").get_by_role("tab", name="Confidence").click()
        tokens_before_pin, pinned_tokens = confidence_layout(page, 0)
        assert "".join(pinned_tokens).replace(" ", "") == pinned.replace(" ", "")
        screenshot(page, "02-pinned")

        others = [block_text(page, 1), block_text(page, 2)]
        run_and_wait(page, lambda: page.locator("#block-0-rerun").click())
        after = block_text(page, 0)
        assert pinned in after, (pinned, after)
        # The same place: as many tokens before the pinned ones as before the re-run.
        assert confidence_layout(page, 0) == [tokens_before_pin, pinned_tokens]
        assert dropdown_options(page, "block-0-pins") == pins
        rest_before = before.replace(pinned, "", 1)
        rest_after = after.replace(pinned, "", 1)
        assert rest_before != rest_after, "the re-run changed nothing around the pin"
        assert [block_text(page, 1), block_text(page, 2)] == others
        screenshot(page, "03-rerun")


def test_retarget_limits_sources_to_one_document(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft the confidentiality obligations.", HEADINGS)
        others = [block_text(page, 0), block_text(page, 2)]
        page.locator("#block-1-targets input").click()
        page.locator("#block-1-targets [role=option]", has_text="nda.pdf").click()
        page.locator("#block-1-targets input").press("Escape")
        expect(page.locator("#block-1-targets")).to_contain_text("nda.pdf")
        run_and_wait(page, lambda: page.locator("#block-1-retarget").click())
        expect(page.locator("#block-1-header")).to_contain_text("limited to 1 document(s)")
        names = source_names(page, 1)
        assert names and set(names) == {"nda.pdf"}, names
        assert [block_text(page, 0), block_text(page, 2)] == others
        screenshot(page, "04-retargeted")


def test_edit_is_saved_and_survives_reload(page: Page, app_server: AppServer) -> None:
    title = "Draft the edit test clauses."
    with explained(app_server, page):
        start_draft(page, title, HEADINGS)
        area = page.locator("#block-2-text textarea")
        area.fill("either party may terminate this agreement upon written notice edited by hand")
        page.locator("#block-2-save").click()
        expect(page.locator("#draft-status")).to_contain_text("Saved.")
        expect(area).to_have_value(re.compile("edited by hand"))
        saved = area.input_value()

        load(page, app_server)
        open_from_drafts(page, title)
        expect(page.locator("#block-2-text textarea")).to_have_value(saved)
        expect(page.locator("#instruction textarea")).to_have_value(title)
        expect(page.locator("#sections textarea")).to_have_value("\n".join(HEADINGS))
        expect(page.locator("#block-0-header")).to_contain_text(HEADINGS[0])
        screenshot(page, "05-edited-reopened")


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
        expect(page.locator("#draft-status")).to_contain_text("Paused.")
        header = page.locator("#block-0-header")
        expect(header).to_contain_text(re.compile(r"step \d+/32"))
        paused_at = int(re.search(r"step (\d+)/32", header.inner_text()).group(1))
        assert paused_at < 32, "the draft finished before Pause took effect"
        screenshot(page, "06-paused")

        load(page, app_server)
        open_from_drafts(page, title)
        status = page.locator("#draft-status")
        expect(status).to_contain_text(f"Opened at step {paused_at}")
        assert "▒" in block_text(page, 0)  # still-masked positions are visible
        page.locator("#step").click()
        expect(status).to_contain_text(f"Stopped at step {paused_at + 1}.")
        expect(header).to_contain_text(f"step {paused_at + 1}/32")
        run_and_wait(page, lambda: page.locator("#resume").click())
        expect(header).to_contain_text("step 32/32 · done")
        assert "▒" not in block_text(page, 0) + block_text(page, 1)
        screenshot(page, "07-resumed")


def test_export_docx_with_footnotes(page: Page, app_server: AppServer, tmp_path: Path) -> None:
    title = "Draft the export test clauses."
    with explained(app_server, page):
        start_draft(page, title, HEADINGS)
        # the demo model's text is supported by nothing, so it gets no footnote: give one
        # section a sentence of the services agreement (clause 5.1), which does
        area = page.locator("#block-0-text textarea")
        area.fill(
            "Either party may terminate this Agreement, or any Statement of Work, for convenience"
            " by giving the other party not less than ninety (90) days' written notice."
        )
        page.locator("#block-0-save").click()
        expect(page.locator("#draft-status")).to_contain_text("Saved.")
        choose_in_drafts(page, title)
        link = page.locator("#export-links a#download-docx")
        expect(link).to_be_visible()
        screenshot(page, "08-exported")
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
    assert "services-agreement.pdf" in footnotes, footnotes[:2000]


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
            for number, (page, (_, headings)) in enumerate(zip(pages, jobs, strict=True)):
                screenshot(page, f"09-session-{number + 1}")
                own, other = headings, jobs[1 - number][1]
                for index, heading in enumerate(own):
                    expect(page.locator(f"#block-{index}-header")).to_contain_text(heading)
                    expect(page.locator(f"#block-{index}-header")).to_contain_text("done")
                expect(page.locator(f"#block-{len(own)}")).to_be_hidden()
                visible = page.locator("[id^=block-][id$=-header]:visible").all_inner_texts()
                assert not any(h in text for h in other for text in visible), visible
            open_tab(pages[0], "drafts")
            for instruction, _ in jobs:
                expect(pages[0].locator("#drafts-table")).to_contain_text(instruction)
            for page in pages:
                assert page.dialogs == [] and page.errors == []  # type: ignore[attr-defined]
    finally:
        for context in contexts:
            context.close()


def test_clicking_a_source_shows_its_page(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        start_draft(page, "Draft the data retention duties of a controller.", HEADINGS)
        last = len(HEADINGS) - 1  # the lowest card: its page must still show where one looks
        row = page.locator(f"#block-{last}-sources [role=row][data-index='0']")
        name = row.locator("[role=gridcell][data-col='0']").inner_text().strip()
        label = row.locator("[role=gridcell][data-col='1']").inner_text().strip()
        row.locator("[role=gridcell][data-col='1']").click()
        image = page.locator("#evidence-image img")
        expect(image).to_be_visible()
        caption = page.locator("#evidence-caption")
        expect(caption).to_contain_text(name)
        expect(caption).to_contain_text(f"page {label}")
        assert image.evaluate("img => img.naturalWidth") > 100
        expect(image).to_be_in_viewport(ratio=0.3)
        screenshot(page, "10-evidence-viewport", full_page=False)
        screenshot(page, "10-evidence")


def test_document_text_with_html_renders_as_text(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        box = page.locator("#search-box textarea, #search-box input").first
        box.fill(INJECTION_WORDS)
        page.locator("#search-button").click()
        results = page.locator("#search-results")
        expect(results).to_contain_text(INJECTION_NAME)
        expect(results).to_contain_text(PAYLOAD)
        expect(page.locator("#documents-table")).to_contain_text(INJECTION_NAME)
        screenshot(page, "11-injection-search")

        start_draft(page, f"Draft the {INJECTION_WORDS} clause.", ["The injection clause"])
        page.locator("#block-0-targets input").click()
        page.locator("#block-0-targets [role=option]", has_text="injection-").click()
        page.locator("#block-0-targets input").press("Escape")
        run_and_wait(page, lambda: page.locator("#block-0-retarget").click())
        names = source_names(page, 0)
        assert names and set(names) == {INJECTION_NAME}, names
        sources = page.locator("#block-0-sources")
        expect(sources).to_contain_text("<script>alert(1)</script>")
        sources.locator("[role=gridcell][data-col='3']").first.click()
        expect(page.locator("#evidence-image img")).to_be_visible()
        expect(page.locator("#evidence-caption")).to_contain_text(INJECTION_NAME)
        screenshot(page, "12-injection-sources")
        page.wait_for_timeout(500)  # give any injected handler its chance to fire
        injected = page.evaluate(
            """() => [...document.querySelectorAll('img[src="x"], script')]
                .filter(e => e.tagName === 'IMG' || e.textContent.includes('alert(')).length"""
        )
        assert injected == 0
        assert page.dialogs == []  # type: ignore[attr-defined]
