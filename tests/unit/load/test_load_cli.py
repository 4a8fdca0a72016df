"""`lab load` through the real `lab` entry point: exit status, summary, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from load_echo_servers import Socat

from lab.cli import main
from lab.load.cli import parse_target


def test_bare_command_passes_and_prints_a_summary(
    socat_echo: Socat, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["load", f"127.0.0.1:{socat_echo.port}", "-t", "0.4", "-c", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("lab load: PASS  mode stream")
    assert f"target 127.0.0.1:{socat_echo.port}: 2 connects" in out


def test_json_to_file_holds_the_whole_result(socat_echo: Socat, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code = main(
        ["load", f"127.0.0.1:{socat_echo.port}", "-m", "ping", "-t", "0.3", "--json", str(path)]
    )
    data = json.loads(path.read_text())
    assert code == 0
    assert data["ok"] is True and data["mode"] == "ping" and data["errors"] == []
    assert data["latency"]["count"] == data["ops"] > 0
    assert len(data["connections"]) == 8 and data["timeline"]


def test_json_to_stdout(socat_echo: Socat, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["load", f"127.0.0.1:{socat_echo.port}", "-n", "100K", "-c", "1", "--json", "-"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["bytes_echoed"] == 100 * 1024


def test_failures_exit_nonzero_and_are_listed(
    refusing_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["load", f"127.0.0.1:{refusing_port}", "-t", "0.2", "-c", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "AFFECTED refused x1" in out and "connect failed" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["load", "nohost"],
        ["load", "127.0.0.1:notaport"],
        ["load", "127.0.0.1:0"],
        ["load", "127.0.0.1:5000@not-an-ip"],
        ["load", "127.0.0.1:5000", "-c", "0"],
        ["load", "127.0.0.1:5000", "-n", "12Q"],
        ["load", "127.0.0.1:5000", "-m", "bogus"],
    ],
)
def test_bad_input_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "lab load: error:" in capsys.readouterr().err


def test_inconsistent_options_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "127.0.0.1:5000", "-m", "ping", "-n", "1M"]) == 2
    assert "stream mode only" in capsys.readouterr().err


def test_target_syntax() -> None:
    t = parse_target("[::1]:7@::1")
    assert (t.host, t.port, t.source, str(t)) == ("::1", 7, "::1", "[::1]:7")
    assert parse_target("127.0.0.2:9").source is None
