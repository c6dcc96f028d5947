"""Every kind of bad file fails with a clear one-line reason and leaves nothing behind."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from helpers import encrypted_pdf, pdf_bytes, write

from engine.library import Library

NDA = SAMPLE_DIR / "nda.pdf"


def assert_library_untouched(library: Library) -> None:
    assert library.documents() == []
    assert library.vectors.count() == 0
    assert library.catalog.documents(("pending", "ready", "deleting")) == []
    assert [p for p in library.files_dir.iterdir()] == []
    assert library.search("confidential information", k=3) == []


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("not-a-pdf.pdf", lambda: b"PK\x03\x04 this is really a zip file" * 50, "not a PDF"),
        ("empty.pdf", lambda: b"", "file is empty"),
        ("truncated.pdf", lambda: NDA.read_bytes()[: len(NDA.read_bytes()) // 3], "corrupt"),
        ("garbage.pdf", lambda: b"%PDF-1.7\n" + os.urandom(4000), "corrupt"),
        ("locked.pdf", lambda: encrypted_pdf(NDA.read_bytes()), "password-protected"),
        ("scan.pdf", lambda: pdf_bytes([None, None, None]), "looks scanned"),
    ],
)
def test_bad_file_fails_with_reason_and_leaves_nothing(library, tmp_path, name, make, reason):
    outcome = library.ingest(write(tmp_path / name, make()))
    assert outcome.status == "failed"
    assert reason in outcome.message
    assert "\n" not in outcome.line()
    assert_library_untouched(library)


def test_scanned_message_counts_the_pages(library, tmp_path):
    outcome = library.ingest(write(tmp_path / "scan.pdf", pdf_bytes([None] * 4)))
    assert "any of its 4 pages" in outcome.message


def test_pages_without_text_are_counted_but_the_rest_is_kept(library, tmp_path):
    data = pdf_bytes(["The lessee shall repaint the premises every five years.", None, None])
    outcome = library.ingest(write(tmp_path / "partly-scanned.pdf", data))
    assert outcome.status == "added"
    assert "2 pages without extractable text" in outcome.message
    (record,) = library.documents()
    assert (record.pages, record.empty_pages) == (3, 2)
    assert library.search("repaint the premises", k=1)[0].page_index == 0


def test_file_over_the_size_limit_is_refused(library, tmp_path):
    small = Library(replace(library.settings, max_file_mb=0.001), embedder=library.embedder)
    outcome = small.ingest(NDA)
    assert outcome.status == "failed" and "over the 0 MB limit" in outcome.message
    assert_library_untouched(small)


def test_file_over_the_page_limit_is_refused(library, tmp_path):
    limited = Library(replace(library.settings, max_pages=2), embedder=library.embedder)
    outcome = limited.ingest(NDA)
    assert outcome.status == "failed" and "3 pages, over the 2-page limit" in outcome.message
    assert_library_untouched(limited)


def test_missing_file_is_a_failure_not_a_crash(library, tmp_path):
    outcome = library.ingest(tmp_path / "nowhere.pdf")
    assert outcome.status == "failed" and "cannot read" in outcome.message


def test_owner_password_only_pdf_is_readable(library, tmp_path):
    """Encrypted with an empty user password: readers open it without asking, and so do we."""
    import io

    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(NDA))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    outcome = library.ingest(write(tmp_path / "owner-locked.pdf", buffer.getvalue()))
    assert outcome.status == "added", outcome.message


def test_filenames_are_stored_without_folders_or_control_characters(library):
    outcome = library.ingest(NDA, filename="../../etc/\x00evil\nname.pdf")
    assert outcome.status == "added"
    assert library.documents()[0].filename == "evilname.pdf"
    assert Path(library.pdf_path(outcome.doc_id)).parent == library.files_dir
