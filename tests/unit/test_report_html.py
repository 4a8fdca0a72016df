"""`lab report --html` from a real run, opened in a real headless Chromium.

The run is real, only small: the load engine (``lab.load.run_load``) drives two
loopback echo servers, one of which aborts every connection for a while (as an
unplugged NIC does) while the test notes a detach and an attach on a real
``lab.vm.Timeline``; the evidence folders are written through ``lab.evidence``;
the JUnit XML comes from a real pytest run of two tiny tests (one passes, one
fails) carrying the properties the Driver Lab plugin records. Chromium
(``apt-packages.txt`` beside this file) dumps the DOM, takes the screenshot kept as
``artifacts/report-screenshot.png`` and logs any console message the page causes.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from lab.evidence import Evidence
from lab.load import LoadResult, LoadSpec, Target, run_load
from lab.report_chart import error_spans, nice_step, throughput_chart
from lab.report_html import write_html
from lab.vm import Timeline

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "artifacts" / "report-screenshot.png"
BROWSER_TIMEOUT_S = 90.0
_CONSOLE = re.compile(r":CONSOLE[:(]")


# -- a real run: echo servers on loopback, one with an outage ---------------------------


@dataclass
class EchoServers:
    ports: tuple[int, int]
    outage: threading.Event = field(default_factory=threading.Event)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                outage: threading.Event | None) -> None:
    try:
        while data := await reader.read(1 << 16):
            if outage is not None and outage.is_set():
                writer.transport.abort()  # an RST, as a vanished NIC's peer sees it
                return
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve(servers: list[asyncio.Server], ready: threading.Event,
                 stop: asyncio.Event, outage: threading.Event) -> None:
    for faulty in (None, outage):
        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                    f: threading.Event | None = faulty) -> asyncio.Future[None]:
            return asyncio.ensure_future(_echo(r, w, f))
        servers.append(await asyncio.start_server(handler, "127.0.0.1", 0))
    ready.set()
    await stop.wait()
    for server in servers:
        server.close()


@pytest.fixture
def echo_servers() -> Iterator[EchoServers]:
    loop = asyncio.new_event_loop()
    servers: list[asyncio.Server] = []
    ready, outage, stop = threading.Event(), threading.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(_serve(servers, ready, stop, outage),), daemon=True)
    thread.start()
    assert ready.wait(10), "the echo servers did not start within 10s"
    ports = tuple(int(s.sockets[0].getsockname()[1]) for s in servers)
    yield EchoServers((ports[0], ports[1]), outage)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def _spec(servers: EchoServers, seconds: float) -> LoadSpec:
    return LoadSpec(targets=tuple(Target("127.0.0.1", p) for p in servers.ports),
                    connections=2, duration=seconds, reconnect=True, progress=False,
                    stall_timeout=2.0)


def steady_load(servers: EchoServers, timeline: Timeline) -> LoadResult:
    timeline.add("load: 2 connections x 2 NICs for 1.0s")
    result = run_load(_spec(servers, 1.0))
    timeline.add(f"load done: {result.bytes_echoed} bytes, {len(result.errors)} errors")
    return result


def churned_load(servers: EchoServers, timeline: Timeline) -> LoadResult:
    """Load while the second target 'is unplugged' for 0.4 s (as load_churn runs it)."""
    box: list[LoadResult] = []
    thread = threading.Thread(target=lambda: box.append(run_load(_spec(servers, 1.6))))
    timeline.add("load: 2 connections x 2 NICs for 1.6s with ua-test1 churned")
    thread.start()
    time.sleep(0.4)
    timeline.add("detach ua-test1 (virtio, 52:54:00:00:00:02) requested")
    servers.outage.set()
    time.sleep(0.4)
    servers.outage.clear()
    timeline.add("attach ua-test1 (virtio, 52:54:00:00:00:02)")
    thread.join(30)
    assert box, "the churned load did not finish within 30s"
    return box[0]


# -- evidence folders and JUnit ---------------------------------------------------------


#: The guest clock of the journal: the driver loaded at 5 s of guest time.
GUEST_LOAD_NS = 5_000_000_000
ADAPTER = "52:54:00:00:00:02@3"


def journal_text(timeline: Timeline) -> str:
    """labtdi's journal as the guest would write it: LOAD when the timeline says
    ``labtdi loaded``, the adapter's teardown at the detach, a bind at the attach."""
    loaded = next(t for t, what in timeline.events if what == "labtdi loaded")
    lines = [(loaded, "LOAD", "-"), (loaded, "BIND", ADAPTER)]
    for t, what in timeline.events:
        if what.startswith("detach"):
            lines += [(t + 0.01, e, ADAPTER) for e in ("QUERY_REMOVE", "PNP_FORWARDED", "UNBIND")]
        elif what.startswith("attach"):
            lines.append((t + 0.05, "BIND", ADAPTER))
    return "".join(f"{GUEST_LOAD_NS + round((t - loaded) * 1e9)} labtdi {event} {adapter} ok\n"
                   for t, event, adapter in lines)


def write_evidence(folder: Path, verdict: str, timeline: Timeline, load: LoadResult) -> None:
    """The files lab.evidence.collect writes, from this run's timeline and load."""
    ev = Evidence(folder)
    ev.add_load(load)
    ev.write("verdict.txt", verdict + "\n")
    ev.write("console.log", "[    1.000000] labtdi: loaded\nlogin: <script>alert(1)</script>\n")
    ev.write("kernel-log.txt", "[    1.000000] labtdi: loaded\n")
    ev.write("journal-labtdi.txt", journal_text(timeline))
    for i, result in enumerate(ev.loads):
        ev.write(f"load-{i}.json", json.dumps(result.to_dict(), indent=1, default=str))
    ev.write("timeline.txt", timeline.text())


SCRATCH_TESTS = '''
import json, os
CASES = json.loads(os.environ["REPORT_CASES"])

def _props(request, name):
    for key, value in CASES[name].items():
        request.node.user_properties.append((key, value))

def test_load_every_nic(request):
    _props(request, "test_load_every_nic")

def test_load_with_churn(request):
    _props(request, "test_load_with_churn")
    assert False, "churn of ua-test1 broke connections on another NIC"
'''


def junit_of_scratch_run(tmp: Path, cases: dict[str, dict[str, str]]) -> Path:
    """A real pytest run of two tiny tests (the Driver Lab plugin off: no lab here)."""
    (tmp / "test_scratch.py").write_text(textwrap.dedent(SCRATCH_TESTS))
    junit = tmp / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:driver_lab",
         f"--junitxml={junit}", "test_scratch.py"],
        cwd=tmp, capture_output=True, text=True, timeout=120,
        env={"REPORT_CASES": json.dumps(cases), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one test fails, as meant
    return junit


def _props(load: LoadResult, verdict: str, folder: Path) -> dict[str, str]:
    return {"verdict": verdict, "vm": "vm1", "evidence": str(folder),
            "throughput_MBps": f"{load.throughput / 1e6:.2f}",
            "load_errors": str(len(load.errors))}


@pytest.fixture
def real_run(tmp_path: Path, echo_servers: EchoServers) -> Path:
    runs = {"test_load_every_nic": ("pass", steady_load),
            "test_load_with_churn": ("driver failed", churned_load)}
    cases = {}
    for name, (verdict, scenario) in runs.items():
        timeline = Timeline()
        timeline.add("leased vm1 by gw0")
        timeline.add("labtdi loaded")
        load = scenario(echo_servers, timeline)
        folder = tmp_path / "evidence" / name
        write_evidence(folder, verdict, timeline, load)
        cases[name] = _props(load, verdict, folder)
    return junit_of_scratch_run(tmp_path, cases)


# -- the browser ------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag of a document with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is not installed: run `make setup` (tests/unit/apt-packages.txt)")
    return subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0",
         "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: a remote fetch would fail
         *args],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)


def console_messages(stderr: str) -> list[str]:
    """What the page logged to the browser console (uncaught errors included)."""
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_console_detector_sees_a_script_error(tmp_path: Path) -> None:
    """The negative control: a page with an uncaught error is caught by console_messages."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>notDefinedAnywhere();</script>")
    out = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert any("notDefinedAnywhere" in m for m in console_messages(out.stderr)), out.stderr


def test_report_of_a_real_run_renders_in_chromium(tmp_path: Path, real_run: Path) -> None:
    html = write_html(real_run, tmp_path / "report.html")
    dom = chromium(tmp_path / "profile", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr
    assert console_messages(dom.stderr) == []
    tags = Tags()
    tags.feed(dom.stdout)
    assert len(tags.having("svg", "chart")) == 4  # two loads x two targets
    assert tags.having("line", "action"), "the detach/attach lines are missing"
    assert tags.having("rect", "span"), "the churned target's error span is missing"
    assert tags.having("line", "journal"), "the journal's UNBIND/BIND ticks are missing"
    assert not [t for t, _ in tags.tags if t in ("script", "link", "img", "iframe")]
    remote = [(t, k, v) for t, a in tags.tags for k, v in a.items()
              if k != "xmlns" and re.match(r"(?i)\s*(https?:)?//", v)]
    assert remote == [], "the page must not fetch anything"
    assert "<script>alert(1)</script>" not in dom.stdout  # the console slice is escaped
    for text in ("driver failed", "pass", "vm1", "journal-labtdi.txt", "BIND"):
        assert text in dom.stdout, text
    links = {unquote(a["href"]) for t, a in tags.tags if t == "a" and "href" in a}
    assert "evidence/test_load_with_churn/console.log" in links
    assert all((tmp_path / h).exists() for h in links if not h.startswith("#"))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no artifacts/
    shot = chromium(tmp_path / "profile", f"--screenshot={SCREENSHOT}",
                    "--window-size=1280,2400", "--hide-scrollbars", html.as_uri())
    assert console_messages(shot.stderr) == []
    assert png_size(SCREENSHOT) == (1280, 2400)


# -- the chart's pure geometry ----------------------------------------------------------


def test_error_spans_group_close_errors() -> None:
    assert error_spans([2.0, 0.5, 0.6, 0.9]) == [(0.5, 1.0), (2.0, 2.1)]
    assert error_spans([]) == []


def test_nice_step_is_1_2_5() -> None:
    assert [nice_step(s, 8) for s in (1.0, 3.0, 9.0, 70.0)] == [0.2, 0.5, 2.0, 10.0]


def test_chart_scales_and_clips() -> None:
    from lab.report_chart import Action

    chart = throughput_chart("t", [0.0, 0.1], [0.1, 0.2], [1_000_000, 2_000_000],
                             [Action(0.15, "detach ua-test0 requested"), Action(5.0, "late")],
                             [0.1])
    assert chart.peak_mbps == pytest.approx(20.0)
    assert [m.label for m in chart.markers] == ["detach ua-test0"]
    assert len(chart.spans) == 1 and chart.spans[0].width > 1.0
    assert chart.points.count(",") == 4


def test_chart_on_the_lease_clock() -> None:
    from lab.report_chart import Action

    chart = throughput_chart("t", [0.0, 1.0], [1.0, 2.0], [1, 1], [Action(3.5, "attach x")],
                             [0.5], offset=3.0, journal=[Action(1.0, "too early")])
    assert [t.label for t in chart.xticks][:3] == ["3s", "3.5s", "4s"]
    assert [m.title for m in chart.markers] == ["3.500s attach x"]
    assert chart.journal == ()
    assert chart.spans[0].x == pytest.approx(chart.left + (chart.right - chart.left) * 0.25)


TIMELINE = """    0.040s  leased vm2 by gw1
    3.658s  kecho loaded
    3.700s  load: 4 connections x 2 NICs for 3.0s with ua-test0 churned
    4.500s  detach ua-test0 (virtio, 52:54:00:9e:03:01) requested
    5.000s  labtdi bound to ua-test0 again
"""


def test_evidence_clocks(tmp_path: Path) -> None:
    from lab.report_evidence import read_journal, read_loads, read_timeline

    events = read_timeline(TIMELINE)
    assert [e.is_action for e in events] == [False, False, False, True, True]
    journal = read_journal("13000000000 kecho LOAD - ok\nnot a journal line\n"
                           "14000000000 kecho ACCEPT - ok\n", events)
    assert [round(j.lease_t or 0, 3) for j in journal] == [3.658, 4.658]
    assert read_journal("1 labtdi LOAD - ok\n", events)[0].lease_t is None  # no anchor
    run = {"targets": [{"target": "a:1"}], "errors": [],
           "timeline": [{"start": 0.0, "end": 0.1, "per_target": [5]}], "throughput": 50.0}
    (tmp_path / "load-0.json").write_text(json.dumps(run))
    assert [r.start_on_lease for r in read_loads(tmp_path, events)] == [3.7]
    (tmp_path / "load-1.json").write_text(json.dumps(run))  # two loads, one start line
    assert [r.start_on_lease for r in read_loads(tmp_path, events)] == [None, None]
