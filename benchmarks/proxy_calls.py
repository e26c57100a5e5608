"""
The highest call rate (INVITE, 100, 180, 200, ACK, BYE, 200) the
C{twistd sip} stateful proxy sustains over UDP on one process, driven by
SIPp through the shared load harness (C{../shared/bench/bench.sh}, scenario
C{uac-invite}), with nothing lost; and the same for Kamailio when it is
installed.

Each step starts a fresh server (memory location store, no
authentication), registers the SIPp answerer as C{uas-udp} with one
REGISTER sent from the answerer's own port (so the binding's flow and its
Contact both name the answerer), then has bench.sh start the answerer on
that port and place calls through the proxy (C{REGISTER_UAS=0}: bench.sh's
own registration comes from another port, and the proxy sends to the
address a UDP binding was registered from).

Two measurements, as in C{benchmarks/registrar.py}:

  - the CPU time one call costs the server at a fixed rate
    (C{--cpu-rate}), the median of C{--repeat} runs;
  - the highest rate with no failed, unfinished or retransmitted call:
    x1.5 from C{--start} until a step fails, then three bisection steps,
    each step a bench.sh run of C{--duration} seconds.

Every SIPp run is bounded by bench.sh (calls = rate x duration, SIPp's own
-timeout, a hard timeout around it); the search by C{--max-steps}.

Run::

    .venv/bin/python benchmarks/proxy_calls.py                 # 3 repeats, Kamailio if installed
    .venv/bin/python benchmarks/proxy_calls.py --quick --no-kamailio
    .venv/bin/python benchmarks/proxy_calls.py --cpu-only --repeat 2
    .venv/bin/python benchmarks/proxy_calls.py --profile /tmp/proxy.prof

The target of issue 6 is at least 600 calls/s through the stateful proxy on
one process.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

if __name__ == "__main__" and not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.registrar import (
    BENCH,
    LOOPBACK,
    Step,
    bench,
    kamailio_server,
    load_options,
    print_table,
    search,
    sipstack_server,
)

__all__ = ["main"]

#: The AOR the answerer registers as (bench.sh's default for UDP).
UAS_USER = "uas-udp"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def register_answerer(port: int, uas_port: int, workdir: Path) -> None:
    """
    Bind C{uas-udp} to C{127.0.0.1:uas_port} with one REGISTER (after a
    C{Contact: *} removal) sent by SIPp from that very port.

    @raise SystemExit: the registration failed.
    """
    argv = [
        shutil.which("sipp") or "sipp",
        f"{LOOPBACK}:{port}",
        "-sf",
        str(BENCH / "register-uas.xml"),
        "-i",
        LOOPBACK,
        "-p",
        str(uas_port),
        "-t",
        "u1",
        "-m",
        "1",
        "-timeout",
        "10s",
        "-nostdin",
        "-key",
        "uas_user",
        UAS_USER,
        "-key",
        "uas_ip",
        LOOPBACK,
        "-key",
        "uas_port",
        str(uas_port),
        "-key",
        "uas_transport",
        "udp",
    ]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=20, cwd=workdir)
    if done.returncode != 0:
        raise SystemExit(f"registering the answerer failed:\n{(done.stdout + done.stderr)[-2000:]}")


def call_step(
    start: Callable[[], AbstractContextManager[tuple[int, int]]],
    rate: float,
    duration: float,
    outdir: Path,
    *,
    register: bool,
) -> Step:
    """One bench.sh uac-invite run against a fresh server, the answerer registered first when C{register}."""
    uas_port = _free_udp_port()
    with start() as (port, pid):
        extra = {"UAS_PORT": str(uas_port), "UAS_USER": UAS_USER}
        if register:
            register_answerer(port, uas_port, outdir.parent)
            extra["REGISTER_UAS"] = "0"
        return bench(port, pid, rate, duration, outdir, scenario="uac-invite", unit="call", extra_env=extra)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    return load_options(
        argv, description=__doc__, unit="call", cpu_rate=300.0, start=300.0, ceiling=2000.0, kamailio_ceiling=5000.0
    )


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    options = _parse(sys.argv[1:] if argv is None else argv)
    if shutil.which("sipp") is None or not (BENCH / "bench.sh").exists():
        print("needs sipp (Debian sip-tester) and ../shared/bench/bench.sh", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-proxy-bench-"))
    outdir = workdir / "sipp"
    outdir.mkdir()
    ours = functools.partial(sipstack_server, "memory", workdir, options.profile, options.server_arg)
    if options.profile is not None:
        step = call_step(ours, options.cpu_rate, options.duration, outdir, register=True)
        print(f"  [sipstack] fixed {step.show()}", file=out)
        print(f"profile at {options.cpu_rate:g} calls/s written to {options.profile}", file=out)
        return 0

    # name -> (measure one rate, ceiling)
    targets: dict[str, tuple[Callable[[float], Step], float]] = {
        "sipstack/proxy": (
            lambda rate: call_step(ours, rate, options.duration, outdir, register=True),
            options.ceiling,
        )
    }
    if not options.no_kamailio and shutil.which("kamailio") and (BENCH / "start-kamailio.sh").exists():
        kamailio = functools.partial(kamailio_server, options.kamailio_children)
        targets[f"kamailio/{options.kamailio_children}w"] = (
            # Kamailio keeps the Contact, so bench.sh's own registration serves.
            lambda rate: call_step(kamailio, rate, options.duration, outdir, register=False),
            options.kamailio_ceiling,
        )
    elif not options.no_kamailio:
        print("kamailio is not installed: no reference numbers", file=out)

    print(
        f"# calls (INVITE...BYE) through the proxy over UDP; {options.repeat} repeats, {options.duration:g} s steps; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        file=out,
    )
    rows = []
    for name, (measure, ceiling) in targets.items():
        cpu = []
        for _ in range(options.repeat):
            step = measure(options.cpu_rate)
            print(f"  [{name}] fixed {step.show()}", file=out, flush=True)
            cpu.append(step)
        maxima: list[tuple[float, Step | None]] = []
        if not options.cpu_only:
            for _ in range(options.repeat):
                found = search(name, measure, options.start, ceiling, max_steps=options.max_steps, out=out)
                print(f"  [{name}] highest clean rate: {found[0]:g}/s", file=out, flush=True)
                maxima.append(found)
        rows.append((name, cpu, maxima))

    print_table(rows, unit="call", rate_unit="calls/s", cpu_rate=options.cpu_rate, outdir=outdir, out=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
