"""Private by default: the app listens on loopback only; with `--auth` every user has their own
library and drafts, and no request of one user (page, Gradio HTTP API, downloads, file routes)
can list, search, read, change or download another user's documents or drafts.

The app runs as a real process (`python app.py --auth users.txt`) and is driven through Gradio's
HTTP API with `gradio_client` (as a script would) and through the sign-in page in Chromium.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import AppServer, chromium, explained, running_app, save_screenshot
from conftest import REPO_ROOT, SAMPLE_DIR, cli_env
from gradio_client import Client, handle_file
from playwright.sync_api import Page, expect

from engine.config import Settings
from engine.users import UserError, Users
from engine.workspaces import NotSignedInError, Workspaces
from ui.uploads import sweep_uploads

ALICE = ("alice", "correct horse battery")
BOB = ("bob", "staple of the realm")
NDA = SAMPLE_DIR / "nda.pdf"
SECRET_WORDS = "confidential information"
WAIT_MS = 60_000


# -- accounts ------------------------------------------------------------------------------------


def test_users_file_keeps_only_salted_hashes(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    users = Users(path)
    users.set_password(*ALICE)
    users.set_password(*BOB)
    text = path.read_text()
    assert ALICE[1] not in text and BOB[1] not in text
    assert path.stat().st_mode & 0o777 == 0o600

    reread = Users(path)
    assert reread.names() == ["alice", "bob"]
    assert reread.verify(*ALICE) and reread.verify(*BOB)
    assert not reread.verify("alice", BOB[1])
    assert not reread.verify("mallory", ALICE[1])
    hashes = dict(line.split(":", 1) for line in text.splitlines())
    users.set_password("carol", ALICE[1])  # same password, different salt, different hash
    assert Users(path)._hashes["carol"] != hashes["alice"]


def test_repeated_wrong_passwords_lock_the_name_for_a_while(tmp_path: Path) -> None:
    now = [1000.0]
    users = Users(tmp_path / "users.txt", clock=lambda: now[0])
    users.set_password(*ALICE)
    users.set_password(*BOB)
    for _ in range(Users.MAX_FAILURES):
        assert not users.verify("alice", "a guess")
    assert users.locked("alice") and not users.verify(*ALICE)  # even the right one, for now
    assert users.verify(*BOB)  # other names are not affected
    now[0] += Users.LOCKOUT_S
    assert users.verify(*ALICE)
    assert not users.verify("alice", "a guess") and not users.locked("alice")  # count restarted


@pytest.mark.parametrize("name", ["../alice", "al/ice", "", ".hidden", "a" * 65, "x\x00y", "bob."])
def test_user_names_that_could_escape_their_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError):
        Users(tmp_path / "users.txt").set_password(name, "long enough password")


def test_adduser_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    command = [sys.executable, "-m", "engine", "adduser", "alice", "--users", str(path)]
    run = subprocess.run(
        command, input=ALICE[1] + "\n", capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert Users(path).verify(*ALICE)
    short = subprocess.run(
        command, input="short\n", capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert short.returncode != 0 and "at least 8 characters" in short.stderr


def test_each_user_has_a_workspace_of_their_own(tmp_path: Path, embedder) -> None:
    workspaces = Workspaces(Settings(library_dir=tmp_path), per_user=True, embedder=embedder)
    alice, bob = workspaces.get("alice"), workspaces.get("bob")
    assert alice.library.root == tmp_path / "users" / "alice"
    assert bob.library.root == tmp_path / "users" / "bob"
    assert workspaces.get("alice") is alice
    alice.library.ingest(NDA)
    assert [d.filename for d in alice.library.documents()] == ["nda.pdf"]
    assert bob.library.documents() == [] and bob.library.search(SECRET_WORDS) == []
    with pytest.raises(NotSignedInError):
        workspaces.get(None)
    with pytest.raises(UserError):
        workspaces.get("../alice")
    shared = Workspaces(Settings(library_dir=tmp_path), per_user=False, embedder=embedder)
    assert shared.get("anyone").library.root == tmp_path


# -- the running app ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("private-app")
    users = Users(root / "users.txt")
    users.set_password(*ALICE)
    users.set_password(*BOB)
    env = cli_env(root / "library", PALIMPSEST_MODEL="demo")
    with running_app(root, env, ["--auth", str(root / "users.txt")]) as server:
        yield server


@pytest.fixture(scope="module")
def alice_draft(app_server: AppServer) -> tuple[Client, str]:
    """Alice's client after she uploaded the NDA and drafted from it; and her draft's id."""
    with explained(app_server):
        alice = Client(app_server.url, auth=ALICE, verbose=False)
        log = alice.predict([handle_file(str(NDA))], api_name="/upload")[0]
        assert "added: nda.pdf" in log, log
        job = alice.submit(
            "Draft the confidentiality clause.",
            "Confidentiality\nTerm",
            "demo",
            4,  # steps
            16,  # tokens per block
            "Linear schedule",
            0.9,
            0.0,
            0,  # seed
            2,  # passages
            2,  # refresh every
            True,
            True,
            [],  # follow: the whole library
            api_name="/start_draft",
        )
        assert job.result(timeout=300)[0].startswith("Done."), job.result()[0]
        drafts = alice.predict(api_name="/drafts")["data"]
        assert len(drafts) == 1, drafts
        return alice, drafts[0][4]


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                addresses.add(address)
    return addresses


def test_app_listens_on_loopback_only(app_server: AppServer) -> None:
    port = int(app_server.url.rstrip("/").rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_nothing_is_served_without_signing_in(app_server: AppServer, alice_draft) -> None:
    _, draft_id = alice_draft
    with httpx.Client(base_url=app_server.url, timeout=30) as anonymous:
        for path in ("/config", "/gradio_api/info", f"/download/{draft_id}.docx"):
            assert anonymous.get(path).status_code == 401, path
        joined = anonymous.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0})
        assert joined.status_code == 401
        wrong = anonymous.post("/login", data={"username": "alice", "password": BOB[1]})
        assert wrong.status_code >= 400
    with pytest.raises(Exception, match="(?i)login|auth|credentials"):
        Client(app_server.url, auth=("alice", BOB[1]), verbose=False)


def test_another_user_cannot_reach_alices_documents_or_drafts(
    app_server: AppServer, alice_draft
) -> None:
    alice, draft_id = alice_draft
    with explained(app_server):
        bob = Client(app_server.url, auth=BOB, verbose=False)
        assert alice.predict(api_name="/documents")[0]["data"][0][0] == "nda.pdf"
        assert bob.predict(api_name="/documents")[0]["data"] == []
        assert alice.predict(SECRET_WORDS, api_name="/search")["data"]
        assert bob.predict(SECRET_WORDS, api_name="/search")["data"] == []
        assert bob.predict(api_name="/drafts")["data"] == []

        opened = bob.predict(draft_id, api_name="/open_draft")
        assert f"no draft {draft_id!r}" in opened[0]
        assert not any("Confidentiality" in str(value) for value in opened)
        _, message, _ = bob.predict(draft_id, api_name="/delete_draft")
        assert message == "No such draft."
        assert [row[4] for row in alice.predict(api_name="/drafts")["data"]] == [draft_id]

        url = f"download/{draft_id}.docx"
        assert httpx.get(app_server.url + url, cookies=bob.cookies).status_code == 404
        mine = httpx.get(app_server.url + url, cookies=alice.cookies, timeout=120)
        assert mine.status_code == 200
        with zipfile.ZipFile(io.BytesIO(mine.content)) as package:
            assert "word/footnotes.xml" in package.namelist()


def test_file_routes_serve_nothing(app_server: AppServer, alice_draft) -> None:
    alice, _ = alice_draft
    library = app_server.library_dir
    stored_pdfs = list((library / "users" / "alice" / "files").glob("*.pdf"))
    assert stored_pdfs, "alice's library holds no PDF"
    uploads = library / "uploads"

    # A file only uploaded (not ingested) is in Gradio's upload folder: even its uploader
    # cannot read it back through a file route.
    posted = httpx.post(
        app_server.url + "gradio_api/upload",
        files={"files": ("pending.pdf", NDA.read_bytes(), "application/pdf")},
        cookies=alice.cookies,
        timeout=60,
    )
    assert posted.status_code == 200, posted.text
    uploaded = posted.json()[0]
    assert Path(uploaded).is_relative_to(uploads)

    targets = [
        uploaded,
        str(stored_pdfs[0]),
        str(library / "users" / "alice" / "library.sqlite3"),
        str(REPO_ROOT / "app.py"),
        "/etc/passwd",
        "../../../../etc/passwd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    ]
    routes = ["gradio_api/file=", "file=", "gradio_api/file/"]
    checked = 0
    for target in targets:
        for route in routes:
            response = httpx.get(app_server.url + route + target, cookies=alice.cookies)
            assert response.status_code in (403, 404), (route, target, response.status_code)
            assert b"%PDF" not in response.content and b"root:" not in response.content
            checked += 1
    assert checked == len(targets) * len(routes)


def test_uploads_are_swept_by_age_and_all_at_start(tmp_path: Path) -> None:
    old, fresh = tmp_path / "aaa" / "old.pdf", tmp_path / "bbb" / "fresh.pdf"
    for path in (old, fresh):
        path.parent.mkdir()
        path.write_bytes(b"%PDF-1.4")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert sweep_uploads(folder=tmp_path) == 1
    assert not old.parent.exists() and fresh.exists()
    assert sweep_uploads(older_than_s=0, folder=tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


# -- the same through the sign-in page ------------------------------------------------------------


def sign_in(page: Page, server: AppServer, user: tuple[str, str]) -> None:
    page.goto(server.url, wait_until="domcontentloaded")
    page.get_by_label("username").fill(user[0])
    page.get_by_label("password").fill(user[1])
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#documents-table")).to_be_visible(timeout=WAIT_MS)


@pytest.mark.browser
def test_each_user_sees_only_their_own_library_in_the_browser(
    app_server: AppServer, alice_draft
) -> None:
    with chromium() as browser, explained(app_server):
        pages = {}
        for user in (ALICE, BOB):
            context = browser.new_context(viewport={"width": 1366, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            sign_in(page, app_server, user)
            pages[user[0]] = page
        expect(pages["alice"].locator("#documents-table")).to_contain_text("nda.pdf")
        expect(pages["bob"].locator("#documents-table")).not_to_contain_text("nda.pdf")
        for name, page in pages.items():
            page.locator("#search-box textarea, #search-box input").first.fill(SECRET_WORDS)
            page.locator("#search-button").click()
            if name == "alice":
                expect(page.locator("#search-results")).to_contain_text("nda.pdf")
            page.get_by_role("tab", name="Drafts").click()
            table = page.locator("#drafts-table")
            expect(table).to_be_visible()
        expect(pages["alice"].locator("#drafts-table")).to_contain_text("confidentiality")
        expect(pages["bob"].locator("#search-results")).not_to_contain_text("nda.pdf")
        expect(pages["bob"].locator("#drafts-table")).not_to_contain_text("confidentiality")
        save_screenshot(pages["bob"], "20-private-other-user")
