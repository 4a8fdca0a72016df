"""What the controller and a host agent exchange: requests, results and errors as JSON.

Pure (stdlib + :mod:`lab.load`, :mod:`lab.l2probe`, :mod:`lab.echo_clients`): it runs
on both sides, inside the agent's zipapp too. Decoding is strict: anything that is not
exactly what the encoder writes raises :class:`WireError`, which the controller reports
as a malformed result. An error crosses the wire as a class name from :data:`ERROR_CLASSES` (never
matched from message text), so an error the instruments raise locally is raised with
the same class when they run on another host.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from functools import cache
from typing import Any

from lab.echo_clients import OUTCOMES, Outcome
from lab.errors import DeadlineExceeded, DriverFailure, DriverHang, LabError, LabFailure, OutsideLab
from lab.l2probe import ProbeReply
from lab.load.result import (
    ConnError,
    ConnStats,
    DataFault,
    ErrorClass,
    Interval,
    Latency,
    LoadConfigError,
    LoadResult,
    LoadSpec,
    Mode,
    Target,
    TargetSummary,
)

#: the agent's operations (argv[1] of ``python3 agent.pyz OP``)
OP_L2PROBE = "l2probe"
OP_LOAD = "load"
#: echo clients held by one agent between calls (lab.echo_clients), and an IP liveness check
OP_CLIENTS_OPEN = "clients-open"
OP_CLIENTS_ECHO = "clients-echo"
OP_CLIENTS_CLOSE = "clients-close"
OP_CARRIES_IP = "carries-ip"
OPS = (OP_L2PROBE, OP_LOAD, OP_CLIENTS_OPEN, OP_CLIENTS_ECHO, OP_CLIENTS_CLOSE, OP_CARRIES_IP)

#: every error class that may cross the wire, by name; an error of another class goes
#: as its nearest registered base (LabFailure at worst)
ERROR_CLASSES: dict[str, type[LabError]] = {cls.__name__: cls for cls in (
    LabFailure, OutsideLab, DeadlineExceeded, LoadConfigError, DriverFailure, DriverHang)}


class WireError(ValueError):
    """A document that is not what the other side's encoder writes."""


def _need(data: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise WireError(f"missing {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):  # no field is a bool
        raise WireError(f"{key!r} is {type(value).__name__}")
    return value


def _opt(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    return None if data.get(key) is None else _need(data, key, kind)


_NUM = (int, float)


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names; None for any other class."""
    return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None


#: values that are their own JSON form (StrEnum members are str: json writes their value)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data, as :func:`dataclasses.asdict` gives it (dataclasses
    as dicts of their fields) without its deep copies: on both sides of every call, so
    the common cases are decided by exact type first."""
    kind: type = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- errors ---------------------------------------------------------------------------

def encode_error(exc: LabError) -> dict[str, Any]:
    """``exc`` as its nearest registered class, summary, hint (and a deadline's figures)."""
    name = next((c.__name__ for c in type(exc).__mro__ if ERROR_CLASSES.get(c.__name__) is c),
                LabFailure.__name__)
    doc: dict[str, Any] = {"class": name, "summary": exc.summary, "hint": exc.hint}
    if isinstance(exc, DeadlineExceeded):
        doc.update(what=exc.what, seconds=exc.seconds)
    return doc


def decode_error(doc: Any, prefix: str = "") -> LabError:
    """The error ``doc`` describes, of its registered class, its summary led by ``prefix``."""
    name = _need(doc, "class", str)
    cls = ERROR_CLASSES.get(name)
    if cls is None:
        raise WireError(f"unknown error class {name!r}")
    err = cls.__new__(cls)
    LabError.__init__(err, prefix + _need(doc, "summary", str), hint=_opt(doc, "hint", str))
    if isinstance(err, DeadlineExceeded):
        err.what = _need(doc, "what", str)
        err.seconds = float(_need(doc, "seconds", _NUM))
    return err


# --- requests -------------------------------------------------------------------------

def spec_to_json(spec: LoadSpec) -> dict[str, Any]:
    doc: dict[str, Any] = _plain(spec)
    return doc


def spec_from_json(doc: Any) -> LoadSpec:
    """The spec; its own checks (LoadConfigError) run again on this side."""
    try:
        targets = tuple(Target(_need(t, "host", str), _need(t, "port", int),
                               _opt(t, "source", str)) for t in _need(doc, "targets", list))
        fields = {k: v for k, v in doc.items() if k not in ("targets", "mode")}
        return LoadSpec(targets=targets, mode=Mode(_need(doc, "mode", str)), **fields)
    except TypeError as exc:  # an unknown or missing field
        raise WireError(f"load spec: {exc}") from None


# --- results --------------------------------------------------------------------------

def probe_to_json(reply: ProbeReply | None) -> dict[str, Any] | None:
    return None if reply is None else asdict(reply)


def probe_from_json(doc: Any) -> ProbeReply | None:
    if doc is None:
        return None
    return ProbeReply(mac=_need(doc, "mac", str), ifindex=_need(doc, "ifindex", int),
                      rtt_s=float(_need(doc, "rtt_s", _NUM)))


def result_to_json(result: LoadResult) -> dict[str, Any]:
    """The result's own fields (:func:`result_from_json` recomputes the derived ones)."""
    doc: dict[str, Any] = _plain(result)
    return doc


def _conn_error(d: Any) -> ConnError:
    fault = _opt(d, "fault", str)
    return ConnError(
        conn=_need(d, "conn", int), attempt=_need(d, "attempt", int),
        target=_need(d, "target", str), source=_opt(d, "source", str),
        time=float(_need(d, "time", _NUM)), cls=ErrorClass(_need(d, "cls", str)),
        detail=_need(d, "detail", str), offset=_opt(d, "offset", int),
        expected=_opt(d, "expected", int), got=_opt(d, "got", int),
        fault=DataFault(fault) if fault is not None else None,
        lost=_opt(d, "lost", int), found_at=_opt(d, "found_at", int))


def _summary(d: Any) -> TargetSummary:
    errors = _need(d, "errors", dict)
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in errors.items()):
        raise WireError("target errors are not counts")
    first, last = _opt(d, "first_error", _NUM), _opt(d, "last_error", _NUM)
    return TargetSummary(
        target=_need(d, "target", str), connections=_need(d, "connections", int),
        bytes=_need(d, "bytes", int), ops=_need(d, "ops", int), errors=dict(errors),
        first_error=None if first is None else float(first),
        last_error=None if last is None else float(last))


def _stats(d: Any) -> ConnStats:
    return ConnStats(conn=_need(d, "conn", int), target=_need(d, "target", str),
                     source=_opt(d, "source", str), connects=_need(d, "connects", int),
                     sent=_need(d, "sent", int), received=_need(d, "received", int),
                     ops=_need(d, "ops", int), errors=_need(d, "errors", int))


def _interval(d: Any) -> Interval:
    per = _need(d, "per_target", list)
    if not all(isinstance(b, int) for b in per):
        raise WireError("per_target is not byte counts")
    return Interval(start=float(_need(d, "start", _NUM)), end=float(_need(d, "end", _NUM)),
                    bytes=_need(d, "bytes", int), per_target=tuple(per),
                    ops=_need(d, "ops", int), errors=_need(d, "errors", int))


def _latency(d: Any) -> Latency | None:
    if d is None:
        return None
    return Latency(count=_need(d, "count", int),
                   **{k: float(_need(d, k, _NUM)) for k in
                      ("p50", "p90", "p99", "p999", "max", "mean")})


def result_from_json(doc: Any) -> LoadResult:
    """The :class:`LoadResult` ``result_to_json`` wrote (derived figures are recomputed)."""
    try:
        return LoadResult(
            mode=Mode(_need(doc, "mode", str)), duration=float(_need(doc, "duration", _NUM)),
            load_seconds=float(_need(doc, "load_seconds", _NUM)), loop=_need(doc, "loop", str),
            targets=tuple(_summary(t) for t in _need(doc, "targets", list)),
            connections=tuple(_stats(c) for c in _need(doc, "connections", list)),
            errors=tuple(_conn_error(e) for e in _need(doc, "errors", list)),
            timeline=tuple(_interval(i) for i in _need(doc, "timeline", list)),
            latency=_latency(doc.get("latency")))
    except ValueError as exc:  # an enum value this side does not know
        if isinstance(exc, WireError):
            raise
        raise WireError(str(exc)) from None


def ports_from_json(doc: Any) -> tuple[int, ...]:
    """The local ports of held clients (``{"ports": [...]}``)."""
    ports = _need(doc, "ports", list)
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
        raise WireError("ports are not port numbers")
    return tuple(ports)


def outcome_from_json(doc: Any) -> Outcome:
    """A held client's round trip (``{"outcome": "echoed" | "reset"}``)."""
    outcome = _need(doc, "outcome", str)
    for known in OUTCOMES:
        if outcome == known:
            return known
    raise WireError(f"unknown outcome {outcome!r}")


def closed_from_json(doc: Any) -> int:
    """How many held clients were closed (``{"closed": n}``)."""
    closed: int = _need(doc, "closed", int)
    return closed


def carries_from_json(doc: Any) -> bool:
    """Whether an address passes IP (``{"carries": true | false}``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("carries"), bool):
        raise WireError("missing 'carries' (true or false)")
    return bool(doc["carries"])
