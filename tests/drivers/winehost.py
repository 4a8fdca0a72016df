"""A throwaway Wine prefix that runs Driver Lab's Windows kernel drivers for real.

Wine loads kernel drivers into winedevice.exe and implements WSK in netio.sys over
host sockets, so wskecho.sys listens on a real 127.0.0.1 port here. Every command has a
deadline; the prefix's own wineserver is started persistent (`wineserver -p`) so the
driver outlives the short `net start` process, and is killed with `wineserver -k`
for that WINEPREFIX only when the prefix is closed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

WINE_DIRS = (Path("/usr/lib/wine"), Path("/usr/bin"))
RESERVED_PORTS = frozenset({7007, 2024})  # used by other parts of the lab


class WineError(Exception):
    """Wine (the lab's host tooling here, not the driver) misbehaved."""


def find_wine_tool(name: str) -> Path | None:
    for d in WINE_DIRS:
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    return Path(found) if found else None


def free_loopback_port() -> int:
    """An ephemeral port that is free on 127.0.0.1 right now (not a reserved one)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port
    raise WineError("no free loopback port")


class WinePrefix:
    """Context manager: a fresh WINEPREFIX under a temp dir with its own wineserver."""

    def __init__(self, root: Path | None = None) -> None:
        wine = find_wine_tool("wine64") or find_wine_tool("wine")
        server = find_wine_tool("wineserver")
        if wine is None or server is None:
            raise WineError("wine64/wineserver not installed (make setup)")
        self.wine = wine
        self.server = server
        self._tmp = tempfile.TemporaryDirectory(prefix="driverlab-wine-", dir=root)
        self.prefix = Path(self._tmp.name) / "prefix"
        self.log = Path(self._tmp.name) / "wine.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DISPLAY"},
            "WINEPREFIX": str(self.prefix),
            "WINEDEBUG": os.environ.get("LAB_WINEDEBUG", "-all"),
            "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono/Gecko installers
        }
        self._server_started = False

    # ---- lifecycle

    def __enter__(self) -> WinePrefix:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> None:
        self.prefix.mkdir(parents=True)
        self._server_started = True  # from here on close() must stop this prefix's server
        self.run(["wineboot", "-i"], timeout=180)
        # Restart the prefix's server as persistent, so services.exe and the drivers'
        # winedevice.exe outlive the short commands (and services.exe starts from the
        # fully initialised registry).
        self._server(["-k"], timeout=30)
        self._server(["-w"], timeout=30)
        self._server(["-p"], timeout=30)

    def close(self) -> None:
        if self._server_started:
            try:
                self._server(["-k"], timeout=30)
                self._server(["-w"], timeout=30)  # waits for that server to exit
            except WineError:
                pass
            self._server_started = False
        self._tmp.cleanup()

    def _server(self, args: Sequence[str], timeout: float) -> None:
        try:
            subprocess.run(
                [str(self.server), *args],
                env=self.env,
                timeout=timeout,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise WineError(f"wineserver {' '.join(args)} timed out") from e

    # ---- commands

    def run(
        self, args: Sequence[str], timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs `wine64 <args>` with a deadline.

        Output goes through files, not pipes: Wine's background processes
        (services.exe, winedevice.exe) inherit the handles and would keep a pipe open.
        """
        out_path = self.log.with_suffix(".out")
        err_path = self.log.with_suffix(".err")
        with out_path.open("w") as out, err_path.open("w") as err:
            try:
                proc = subprocess.run(
                    [str(self.wine), *args],
                    env=self.env,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    check=False,
                )
            except subprocess.TimeoutExpired as e:
                raise WineError(f"wine {' '.join(args)} did not finish within {timeout}s") from e
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        with self.log.open("a") as f:
            f.write(f"$ wine {' '.join(args)} -> {r.returncode}\n{stdout}{stderr}\n")
        if check and r.returncode != 0:
            raise WineError(f"wine {' '.join(args)} failed ({r.returncode}):\n{stdout}{stderr}")
        return r

    def backtraces(self, timeout: float = 120) -> str:
        """Every thread's backtrace in every process of this prefix (winedbg `bt all`)."""
        try:
            return self.run(["winedbg", "--command", "bt all"], timeout=timeout, check=False).stdout
        except WineError as e:
            return f"(no backtraces: {e})"

    @property
    def drive_c(self) -> Path:
        return self.prefix / "drive_c"

    def install(self, src: Path, rel: str) -> str:
        """Copies `src` to C:\\<rel>; returns the Windows path."""
        dst = self.drive_c / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        return "C:\\" + rel.replace("/", "\\")

    def reg_set(self, key: str, name: str, value: int | str) -> None:
        kind, data = ("REG_DWORD", str(value)) if isinstance(value, int) else ("REG_SZ", value)
        self.run(["reg", "add", key, "/v", name, "/t", kind, "/d", data, "/f"], timeout=30)

    def reg_delete(self, key: str, name: str) -> None:
        self.run(["reg", "delete", key, "/v", name, "/f"], timeout=30, check=False)


def wait_for_port(port: int, deadline_s: float) -> None:
    """Waits until 127.0.0.1:port accepts a connection (the driver is listening)."""
    end = time.monotonic() + deadline_s
    delay = 0.05
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as e:
            if time.monotonic() > end:
                raise WineError(f"nothing listens on 127.0.0.1:{port} after {deadline_s}s") from e
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
