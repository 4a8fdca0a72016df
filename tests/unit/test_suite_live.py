"""The suite's live panel: rows from the workers' status files, a verdict footer, and a
terminal proxy that keeps the panel below pytest's own output (also through a real pty)."""

from __future__ import annotations

import importlib.util
import io
import sys
import time
from pathlib import Path
from types import ModuleType

from rich.console import Console

from lab.suite_live import PanelTerminal, SuiteState
from lab.suite_progress import WorkerStatus

REPO = Path(__file__).resolve().parents[2]


def _text(state: SuiteState) -> list[list[str]]:
    console = Console(record=True, force_terminal=True, width=120, file=io.StringIO())
    console.print(state.render())
    return [line.split() for line in console.export_text().splitlines() if line.strip()]


def test_a_row_per_running_test_with_its_vm_step_and_time(tmp_path: Path) -> None:
    WorkerStatus(tmp_path / "progress", "gw0").begin("tests/s.py::test_unload[a]", "vm2")
    status = WorkerStatus(tmp_path / "progress", "gw1")
    status.begin("tests/s.py::test_load[b]", "vm1")
    status.step("kecho loaded")
    state = SuiteState(tmp_path, clock=lambda: time.time() + 30)
    state.total = 5
    for verdict in ("passed", "passed", "driver-crash"):
        state.record(verdict)
    rows = _text(state)
    assert rows[0] == ["worker", "test", "VM", "step", "for", "total"]
    assert rows[1][:4] == ["gw0", "test_unload[a]", "vm2", "leased"]
    assert rows[2][:5] == ["gw1", "test_load[b]", "vm1", "kecho", "loaded"]
    assert rows[2][5:] == ["30s", "30s"]
    assert rows[3] == ["3/5", "done:", "1", "driver-crash,", "2", "passed"]


def test_no_running_test_shows_only_the_footer(tmp_path: Path) -> None:
    assert _text(SuiteState(tmp_path)) == [["0/?", "done"]]


def test_pytest_writes_erase_the_panel_first_and_the_cursor_returns_to_its_line() -> None:
    real = io.StringIO()
    term = PanelTerminal(real, width=80)
    term.write("tests/s.py ..")
    term.draw(["row 1", "footer"])
    assert real.getvalue().endswith("..\nrow 1\nfooter\x1b[2A\x1b[14G")
    term.write(".")
    assert real.getvalue().endswith("\x1b[2A\x1b[14G\x1b[J.")
    term.write("\x1b[32m [100%]\x1b[0m\n")
    term.draw(["footer"])
    assert real.getvalue().endswith("\n\nfooter\x1b[1A\x1b[1G")
    term.close()
    assert real.getvalue().endswith("\x1b[J")


def _ptyrun() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ptyrun", REPO / "tests" / "lab" / "ptyrun.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAKE_SUITE = '''
import os
import time
from pathlib import Path
import pytest
from lab.suite_progress import WorkerStatus

@pytest.mark.parametrize("n", range(2))
def test_slow(n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    status = WorkerStatus(Path(__file__).parent / "run" / "progress", worker)
    status.begin(f"test_fake.py::test_slow[{n}]", f"vm{n + 1}")
    status.step("kecho loaded")
    time.sleep(1.5)
    status.end(f"test_fake.py::test_slow[{n}]", "pass")
'''


def test_a_real_pytest_run_on_a_terminal_shows_the_panel(tmp_path: Path) -> None:
    (tmp_path / "test_fake.py").write_text(FAKE_SUITE)
    rc, out = _ptyrun().run_in_pty(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
         "--lab-run-dir", str(tmp_path / "run"), "test_fake.py"], tmp_path, timeout=120)
    assert rc == 0, out
    rows = [line.split() for line in out.splitlines()]
    shown = [r[1:5] for r in rows if r and r[0] in ("gw0", "gw1")]
    assert ["test_slow[0]", "vm1", "kecho", "loaded"] in shown, out
    assert ["test_slow[1]", "vm2", "kecho", "loaded"] in shown, out
    assert any(r[:2] == ["0/2", "done"] for r in rows), out
    assert "2 passed" in out.splitlines()[-1]
