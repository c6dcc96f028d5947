"""Small utilities the tests share: free ports, waiting for servers, bad PDFs."""

from __future__ import annotations

import io
import socket
import time
import urllib.request
from pathlib import Path

import pypdf
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def pdf_bytes(pages: list[str | None]) -> bytes:
    """A PDF with one page per entry: its text, or a drawn shape and no text for None."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for text in pages:
        if text is None:
            pdf.rect(100, 100, 300, 400, fill=1)
        else:
            lines = pdf.beginText(72, 770)
            for line in text.splitlines():
                lines.textLine(line)
            pdf.drawText(lines)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypted_pdf(source: bytes, password: str = "secret") -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(source)))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
