"""A Jupyter kernel launcher for the tests' nbval run: instead of starting a cold Python kernel
it asks the session's kernel template (runbook_lib.kernel.template, whose socket
RUNBOOK_TEST_KERNEL_TEMPLATE names) to fork one on the connection file the kernel manager
wrote, with this process's environment and working directory, and then stands in for it:
signals are passed on, and it exits when the kernel does.

    python tests/support/forked_kernel.py CONNECTION_FILE

Standard library only: the kernel manager starts it as a plain script.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def main(connection_file: str) -> int:
    request = {
        "connection_file": connection_file,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "transport": "tcp",  # what jupyter_client's kernel manager writes by default
    }
    path = os.environ["RUNBOOK_TEST_KERNEL_TEMPLATE"]
    deadline = time.monotonic() + 60
    while not os.path.exists(path):  # the template is still importing
        if time.monotonic() > deadline:
            print(f"forked_kernel: no kernel template at {path}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(sock.makefile("rb").readline() or b"{}")
    if "pid" not in reply:
        print(f"forked_kernel: the template did not fork: {reply.get('error', 'no answer')}", file=sys.stderr)
        return 1
    pid = int(reply["pid"])

    def pass_on(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        if signum != signal.SIGINT:  # SIGINT interrupts a cell; the others end the kernel, and us
            raise SystemExit(0)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, pass_on)
    while alive(pid):
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
