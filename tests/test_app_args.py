"""`python app.py` reads its address as every Gradio app does, with its own settings first."""

from __future__ import annotations

import pytest

from app import parse_args


@pytest.mark.parametrize(
    ("env", "host", "port"),
    [
        ({}, "127.0.0.1", 7860),
        ({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7999"}, "0.0.0.0", 7999),
        (
            {"GRADIO_SERVER_PORT": "7999", "PALIMPSEST_PORT": "8123", "PALIMPSEST_HOST": "::1"},
            "::1",
            8123,
        ),
    ],
)
def test_address_from_the_environment(monkeypatch, env, host, port):
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PALIMPSEST_HOST", "PALIMPSEST_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parse_args([])
    assert (args.host, args.port) == (host, port)
    assert parse_args(["--port", "7001"]).port == 7001  # the flag wins over the environment
