"""`lab report --html FILE`: one self-contained HTML page for a scenario run.

The page holds a summary by verdict class, then per test its verdict, VM, duration,
relative links to its evidence files, a throughput chart per load target (100 ms
buckets, lab actions as vertical lines, error spans shaded), the lab's timeline and
the driver journals on the lease clock, and the console slice (collapsed). No
script, no stylesheet or font from the network: it opens anywhere, offline.
Templating is Jinja2 (``lab/templates/report.html.j2``, autoescaped); the charts'
geometry comes from :func:`lab.report_chart.throughput_chart`.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import jinja2

from lab.report_cases import Case, count_by_class, read_cases
from lab.report_chart import Action, Chart, throughput_chart
from lab.report_evidence import (
    JournalLine,
    LabEvent,
    LoadRun,
    read_journal,
    read_loads,
    read_timeline,
)

#: The console slice kept in the page (its tail); the full file is linked.
CONSOLE_LIMIT = 200_000


@dataclass(frozen=True)
class Link:
    name: str
    href: str


@dataclass(frozen=True)
class LoadView:
    run: LoadRun
    charts: tuple[Chart, ...]

    @property
    def aligned(self) -> bool:
        return self.run.start_on_lease is not None


@dataclass(frozen=True)
class CaseView:
    case: Case
    anchor: str
    folder: str
    links: tuple[Link, ...]
    verdict_text: str
    events: tuple[LabEvent, ...]
    loads: tuple[LoadView, ...]
    journal: tuple[JournalLine, ...]
    console: str
    console_cut: bool


@dataclass(frozen=True)
class Page:
    junit: str
    suite: str
    generated: str
    counts: dict[str, int]
    tests: tuple[CaseView, ...]
    run: tuple[str, ...] = ()
    """Which run this is, and whether it was cut short (lab.report run lines)."""
    warning: bool = False
    """True when the run is not complete: the run lines are shown as a warning."""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _href(target: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(target, base)).as_posix())


def _load_view(run: LoadRun, events: list[LabEvent],
               journal: tuple[JournalLine, ...]) -> LoadView:
    """Charts on the lease clock when the load's start is known, else on the load's own."""
    actions: list[Action] = []
    marks: list[Action] = []
    if run.start_on_lease is not None:
        actions = [Action(e.t, e.text) for e in events if e.is_action]
        marks = [Action(j.lease_t, f"{j.driver} {j.event} {j.adapter} {j.status}")
                 for j in journal if j.lease_t is not None and j.adapter != "-"]
    charts = tuple(
        throughput_chart(target, run.starts, run.ends, run.per_target[i], actions,
                         [e.t for e in run.errors if e.target == target],
                         offset=run.start_on_lease or 0.0, journal=marks)
        for i, target in enumerate(run.targets))
    return LoadView(run, charts)


def _journal(folder: Path, events: list[LabEvent]) -> tuple[JournalLine, ...]:
    lines = [line for path in sorted(folder.glob("journal-*.txt"))
             for line in read_journal(_read(path), events)]
    return tuple(sorted(lines, key=lambda j: (j.lease_t is None, j.lease_t or 0.0, j.t_ns)))


def case_view(case: Case, index: int, base: Path) -> CaseView:
    """Everything the page shows of one test (``base``: the folder of the HTML file)."""
    folder = Path(case.props.get("evidence", ""))
    has_folder = bool(case.props.get("evidence")) and folder.is_dir()
    files = sorted(p for p in folder.iterdir() if p.is_file()) if has_folder else []
    events = read_timeline(_read(folder / "timeline.txt")) if has_folder else []
    console = _read(folder / "console.log") if has_folder else ""
    journal = _journal(folder, events) if has_folder else ()
    return CaseView(
        case=case, anchor=f"t{index}",
        folder=_href(folder, base) if has_folder else "",
        links=tuple(Link(p.name, _href(p, base)) for p in files),
        verdict_text=_read(folder / "verdict.txt").strip() if has_folder else "",
        events=tuple(events),
        loads=tuple(_load_view(r, events, journal) for r in read_loads(folder, events))
        if has_folder else (),
        journal=journal,
        console=console[-CONSOLE_LIMIT:], console_cut=len(console) > CONSOLE_LIMIT)


def _suite(junit: Path) -> str:
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return ""
    return " ".join(f"{k}={suite.get(k)}" for k in ("timestamp", "hostname", "tests",
                                                    "failures", "errors", "skipped")
                    if suite.get(k))


def build_page(junit: Path, out: Path, run: tuple[str, ...] = (),
               warning: bool = False) -> Page:
    cases = read_cases(junit)
    base = out.resolve().parent
    return Page(junit=str(junit), suite=_suite(junit),
                generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                counts=count_by_class(cases),
                tests=tuple(case_view(c, i, base) for i, c in enumerate(cases)),
                run=run, warning=warning)


def _css_class(verdict: str) -> str:
    return re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("lab", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["css"] = _css_class
    return env


def render(page: Page) -> str:
    return environment().get_template("report.html.j2").render(page=page)


def write_html(junit: Path, out: Path, run: tuple[str, ...] = (),
               warning: bool = False) -> Path:
    """Render the report of ``junit`` to ``out`` (atomically: a reader never sees half);
    ``run``: lines on which run it is and, with ``warning``, what it did not run."""
    html = render(build_page(junit, out, run, warning))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
