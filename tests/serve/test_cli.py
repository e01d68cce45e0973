"""``auditor serve`` on the command line: loopback by default, a warning past it, clear errors."""

from __future__ import annotations

import urllib.request

from serving import Server

from auditor.cli import main


def test_a_public_address_needs_the_flag(built, capsys):
    assert main(["serve", "--db", str(built.db), "--host", "0.0.0.0"]) == 2
    assert "pass --public" in capsys.readouterr().err


def test_a_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["serve", "--db", str(tmp_path / "none.duckdb")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_a_missing_trust_root_is_a_clear_error(built, tmp_path, capsys):
    assert main(["serve", "--db", str(built.db), "--trust", str(tmp_path / "root.pem")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_public_binding_warns_and_serves_any_host(built):
    server = Server(built.db, "--host", "0.0.0.0", "--public")
    try:
        request = urllib.request.Request(server.url + "/api/overview",
                                         headers={"Host": "audit.example.org"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        server.stop()
    output = server.process.stdout.read()
    assert "WARNING" in output and "NO authentication" in output
