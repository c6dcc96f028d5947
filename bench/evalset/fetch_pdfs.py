"""Rebuild bench/evalset/pdfs/ from git mirrors of the repositories named in sources.json.

    python bench/evalset/fetch_pdfs.py --mirrors /work/.mirror

A mirror of owner/name is the bare repository at MIRRORS/owner+name/repo (or MIRRORS/owner+name);
each file is read at its recorded commit with `git show`, so the folder is rebuilt byte for byte.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def git_dir(mirrors: Path, repo: str) -> Path:
    """The bare repository that mirrors `repo` under `mirrors`."""
    base = mirrors / repo.replace("/", "+")
    return base / "repo" if (base / "repo").is_dir() else base


def fetch(mirrors: Path, target: Path) -> list[str]:
    """Write every PDF of the manifest into `target`; returns the files it could not read."""
    target.mkdir(parents=True, exist_ok=True)
    missing = []
    for source in json.loads((HERE / "sources.json").read_text())["pdfs"]:
        spec = f"{source['commit']}:{source['path']}"
        result = subprocess.run(
            ["git", f"--git-dir={git_dir(mirrors, source['repo'])}", "show", spec],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            missing.append(source["file"])
            continue
        (target / source["file"]).write_bytes(result.stdout)
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--target", type=Path, default=HERE / "pdfs")
    args = parser.parse_args()
    missing = fetch(args.mirrors, args.target)
    print(f"missing: {', '.join(missing)}" if missing else "all PDFs written")


if __name__ == "__main__":
    main()
