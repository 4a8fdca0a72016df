"""One error root for the whole lab.

Every failure the lab reports is a :class:`LabError`. It is one of two kinds and
the two never look alike in a report:

* :class:`DriverFailure` -- the driver under test misbehaved: it crashed, hung,
  broke a contract (journal order, register/deregister pairing) or corrupted data.
* :class:`LabFailure` -- the lab itself could not do its job: libvirt, QEMU, an
  image, SSH, the host, or the user's configuration.

Each error carries a one-line ``summary`` and an optional ``hint`` telling the
user what to do about it; the CLI prints those instead of a traceback.
"""

from __future__ import annotations


class LabError(Exception):
    """Root of every error the lab raises on purpose."""

    kind = "error"

    def __init__(self, summary: str, *, hint: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.summary}\n  fix: {self.hint}"
        return self.summary


class LabFailure(LabError):
    """The lab (libvirt, QEMU, image, SSH, host, configuration) failed."""

    kind = "lab failed"


class DriverFailure(LabError):
    """The driver under test failed (crash, hang, broken contract, corrupt data)."""

    kind = "driver failed"


class ConfigError(LabFailure):
    """``lab.toml`` is wrong. Always names the file, the key and the fix."""

    def __init__(self, path: str, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: [{key}] {problem}", hint=fix)
        self.path = path
        self.key = key


class DeadlineExceeded(LabFailure):
    """A wait ran out of time. The message names what was awaited and for how long."""

    def __init__(self, what: str, seconds: float, last_seen: str | None = None) -> None:
        detail = f"; last seen: {last_seen}" if last_seen else ""
        super().__init__(f"timed out after {seconds:.0f}s waiting for {what}{detail}")
        self.what = what
        self.seconds = seconds
