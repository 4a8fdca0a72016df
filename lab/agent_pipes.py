"""The byte pipe between the controller and one host agent (:mod:`lab.hostagent`).

An agent is a process on another host that reads request lines on its stdin and writes
answer lines on its stdout. Two pipes carry it:

* :class:`ProcessPipe` -- the OpenSSH client (``ssh``), one process per agent, its
  stdin/stdout/stderr pipes read here. Its packets are encrypted and decrypted in C,
  so a short call costs about half a millisecond less than over paramiko on this
  2-core machine (`make bench-instruments`); used when ``ssh`` is installed.
* :class:`ChannelPipe` -- an exec channel on the lab's paramiko connection to the
  host (the fallback, and what the tests compare it with).

Both give the same view: bytes sent, bytes that arrived (never blocking), whether the
agent's output ended, its exit code once known, and ``close`` that ends the agent even
in the middle of an operation (its stdin hangs up: the agent exits; see
:mod:`lab.hostagent_main`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Protocol

import paramiko

from lab import openssh_pins

#: how long ``close`` waits for the ssh client to end after SIGTERM, then SIGKILL
CLOSE_WAIT_S = 3.0
#: seconds between keepalives of an agent's SSH connection, and how many may go unanswered
ALIVE_INTERVAL_S = 5
ALIVE_COUNT = 3


class AgentPipe(Protocol):
    """What :class:`lab.hostagent._Agent` needs of its transport."""

    def send(self, data: bytes) -> None:
        """All of ``data`` to the agent's stdin (OSError/EOFError when it cannot)."""

    def fileno(self) -> int:
        """A descriptor that selects readable when output or the end arrives."""

    def read_out(self) -> bytes:
        """What arrived on the agent's stdout since the last call (b"": nothing)."""

    def read_err(self) -> bytes:
        """What arrived on its stderr (the ssh client's own complaints included)."""

    def out_ended(self) -> bool:
        """Its stdout ended and everything before the end was read."""

    def exit_known(self) -> bool:
        """Whether it ended with an exit code or a signal (told to this side)."""

    def exit_code(self) -> int | None:
        """Its exit code; None while unknown, or when it was killed by a signal."""

    def ended(self) -> bool:
        """The agent's side is over (output ended, exited, or closed here)."""

    def close(self) -> None:
        """End the pipe; the agent exits with it."""


def openssh_argv(*, address: str, port: int, user: str, key_file: str, known_hosts: str,
                 connect_timeout_s: float) -> list[str]:
    """The OpenSSH client command (without the remote command) for a host the lab
    pinned: only the lab's key and known_hosts, no user or system configuration, no
    agent, no prompts, the host key checked strictly (never learnt)."""
    options = {
        "BatchMode": "yes",
        **openssh_pins.pinned(known_hosts),
        "ConnectTimeout": str(max(1, round(connect_timeout_s))),
        "ServerAliveInterval": str(ALIVE_INTERVAL_S),
        "ServerAliveCountMax": str(ALIVE_COUNT),
        "LogLevel": "ERROR",
    }
    argv = ["ssh", "-F", "/dev/null", "-T", "-x", "-a", "-i", key_file, "-p", str(port),
            "-l", user]
    return [*argv, *openssh_pins.as_argv(options), "--", address]


class ProcessPipe:
    """An agent run through the OpenSSH client: ``ssh ... <remote command>``, started in
    the network namespace ``netns_fd`` refers to (nsenter; the controller's connection to
    the host was made there) whichever namespace the calling thread is in."""

    def __init__(self, ssh: Sequence[str], remote_command: str, netns_fd: int) -> None:
        argv = ["nsenter", f"--net=/proc/self/fd/{netns_fd}", "--", *ssh, remote_command]
        # its own session: a ^C meant for the controller reaches it through close()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, pass_fds=(netns_fd,),
                                     start_new_session=True)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in, self._out, self._err = (self.proc.stdin.fileno(), self.proc.stdout.fileno(),
                                          self.proc.stderr.fileno())
        os.set_blocking(self._out, False)
        os.set_blocking(self._err, False)
        self._eof = False
        self._closed = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view):]

    def fileno(self) -> int:
        return self._out

    def read_out(self) -> bytes:
        got = self._read(self._out)
        if got is None:
            self._eof = True
            return b""
        return got

    def read_err(self) -> bytes:
        return self._read(self._err) or b""

    @staticmethod
    def _read(fd: int) -> bytes | None:
        """Everything readable now; None at end of file (with nothing before it)."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:  # closed here
                return b"".join(chunks) or None
            if not chunk:
                return b"".join(chunks) or None
            chunks.append(chunk)
        return b"".join(chunks)

    def out_ended(self) -> bool:
        return self._eof

    def exit_known(self) -> bool:
        return self.proc.poll() is not None

    def exit_code(self) -> int | None:
        code = self.proc.poll()
        return code if code is not None and code >= 0 else None

    def ended(self) -> bool:
        return self._closed or self._eof or self.proc.poll() is not None

    def close(self) -> None:
        """SIGTERM to the ssh client (its connection ends: sshd hangs up the agent's
        stdin and the agent exits, mid-operation too), SIGKILL if it lingers; reaped."""
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=CLOSE_WAIT_S)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class ChannelPipe:
    """An agent run in an exec channel of a paramiko connection to the host."""

    def __init__(self, transport: paramiko.Transport, remote_command: str,
                 timeout: float) -> None:
        self.chan = transport.open_session(timeout=timeout)
        self.chan.exec_command(remote_command)

    def send(self, data: bytes) -> None:
        self.chan.sendall(data)

    def fileno(self) -> int:
        return self.chan.fileno()

    def read_out(self) -> bytes:
        got = b""
        while self.chan.recv_ready():
            got += self.chan.recv(1 << 16)
        return got

    def read_err(self) -> bytes:
        got = b""
        while self.chan.recv_stderr_ready():
            got += self.chan.recv_stderr(1 << 16)
        return got

    def out_ended(self) -> bool:
        return bool(self.chan.eof_received and not self.chan.recv_ready())

    def exit_known(self) -> bool:
        return bool(self.chan.exit_status_ready())

    def exit_code(self) -> int | None:
        if not self.chan.exit_status_ready():
            return None
        code = self.chan.recv_exit_status()
        return code if code >= 0 else None

    def ended(self) -> bool:
        return bool(self.chan.closed or self.chan.eof_received or self.chan.exit_status_ready())

    def close(self) -> None:
        self.chan.close()
