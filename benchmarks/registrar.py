"""
The highest REGISTER rate the C{twistd sip} registrar sustains over UDP on
one process, driven by SIPp through the shared load harness
(C{../shared/bench/bench.sh}), with the memory store and with the SQLite
store, no authentication; and the same for Kamailio when it is installed.

Two measurements for each target:

  - the CPU time one REGISTER costs the server, at a fixed rate well below
    the maximum (C{--cpu-rate}), as the median of C{--repeat} runs: on a
    shared, noisy machine this is the stable number;
  - the highest rate sustained with no failed call and no retransmission
    (stricter than C{find-max.sh}, which tolerates 0.1% failures): a
    geometric ramp (x1.5) from C{--start} until a step fails, then three
    bisection steps, each step a C{bench.sh} run of C{--duration} seconds
    against a fresh server (so every step starts from an empty store and
    no backlog); the median over C{--repeat} searches.

Every SIPp run is bounded by bench.sh (calls = rate x duration, SIPp's own
-timeout, a hard timeout around it); the search by C{--max-steps}.  The
server is the real one: C{twistd -n sip} in a child process, listening on
an ephemeral loopback UDP port; C{--profile FILE} runs it under twistd's
cProfile (C{--profiler=cprofile --savestats}) for one fixed-rate run and
writes the statistics to FILE (much slower: for where the time goes, not
for rates).

Run::

    .venv/bin/python benchmarks/registrar.py                  # memory and sqlite, 3 repeats, Kamailio if installed
    .venv/bin/python benchmarks/registrar.py --quick          # 1 repeat, 3 s steps
    .venv/bin/python benchmarks/registrar.py --stores memory --no-kamailio --cpu-only
    .venv/bin/python benchmarks/registrar.py --stores memory --profile /tmp/registrar.prof

The target of issue 6 is at least 5,000 REGISTER/s over UDP without
authentication on one process.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["Step", "Target", "bench", "main", "search", "sipstack_server"]

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "bench"
LOOPBACK = "127.0.0.1"
#: The port the shared Kamailio configuration listens on.
KAMAILIO_PORT = 5060
_LISTENING = re.compile(r"Listening on udp:\S+ \(127\.0\.0\.1:(\d+)\)")


@dataclass(frozen=True, slots=True)
class Step:
    """One bench.sh run: its RESULT line, as numbers where they are numbers."""

    rate: float
    values: dict[str, str]
    code: int
    #: What one SIPp "call" is, for the CPU figure.
    unit: str = "REGISTER"

    def number(self, name: str) -> float:
        try:
            return float(self.values.get(name, "nan"))
        except ValueError:
            return float("nan")

    @property
    def clean(self) -> bool:
        """Passed bench.sh's criterion, with no failed, unfinished or retransmitted call at all."""
        return (
            self.code == 0
            and self.number("failed") == 0
            and self.number("unfinished") == 0
            and self.number("not_created") == 0
            and self.number("retransmissions") == 0
        )

    @property
    def cpu_us_per_op(self) -> float:
        return 1000 * self.number("target_cpu_ms_per_call")

    def show(self) -> str:
        return (
            f"rate={self.rate:g} achieved={self.number('achieved_cps'):g}/s failed={self.values.get('failed')} "
            f"retrans={self.values.get('retransmissions')} cpu={self.number('target_cpu_pct'):g}% "
            f"({self.cpu_us_per_op:.0f} us/{self.unit}) rtd={self.values.get('rtt1_avg_ms')} ms "
            f"host_busy={self.values.get('host_busy_pct')}% verdict={'clean' if self.clean else 'FAIL'}"
        )


@dataclass(frozen=True, slots=True)
class Target:
    """
    Something to load: C{start} brings up a fresh server and yields its port
    and pid (for its CPU), stopping it afterwards.
    """

    name: str
    start: Callable[[], AbstractContextManager[tuple[int, int]]]


def _twistd() -> list[str]:
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [sys.executable, str(script)]
    found = shutil.which("twistd")
    if found is None:
        raise SystemExit("twistd not found next to this Python nor on PATH")
    return [found]


@contextmanager
def sipstack_server(
    store: str, workdir: Path, profile: Path | None = None, extra_args: Sequence[str] = ()
) -> Iterator[tuple[int, int]]:
    """
    C{twistd -n sip} with C{store} (C{memory} or C{sqlite}) on an ephemeral
    UDP port of 127.0.0.1, in a data directory of its own, with
    C{extra_args} (e.g. C{--gc default}); yields (port, pid) once it
    listens, and stops it with SIGTERM (then SIGKILL).
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"registrar-{store}-", dir=workdir))
    location = "memory" if store == "memory" else f"sqlite:{data_dir / 'location.sqlite3'}"
    profiling = [] if profile is None else [f"--profile={profile}", "--profiler=cprofile", "--savestats"]
    argv = [
        *_twistd(),
        "-n",
        "--pidfile=",
        *profiling,
        "sip",
        "--listen",
        f"udp:0:interface={LOOPBACK}",
        "--location",
        location,
        "--data-dir",
        str(data_dir),
        "--grace",
        "0",
        *extra_args,
    ]
    log_path = data_dir / "twistd.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir, env=_environment())
        try:
            port = _wait_listening(process, log_path)
            yield port, process.pid
        finally:
            _stop(process, timeout=60 if profile else 10)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the server did not start; its log:\n{log_path.read_text(errors='replace')[-3000:]}")


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def kamailio_server(children: int) -> Iterator[tuple[int, int]]:
    """
    The shared reference Kamailio (C{start-kamailio.sh}) with C{children}
    UDP workers; one already running (another user's) is used as it is
    and left running.
    """
    script = str(BENCH / "start-kamailio.sh")
    running = subprocess.run([script, "status"], check=False, capture_output=True, text=True).returncode == 0
    if not running:
        subprocess.run([script, "start", str(children)], check=True, capture_output=True, text=True)
    try:
        pid = int(subprocess.run([script, "pid"], check=True, capture_output=True, text=True).stdout.strip())
        yield KAMAILIO_PORT, pid
    finally:
        if not running:
            subprocess.run([script, "stop"], check=False, capture_output=True, text=True)


def bench(
    port: int,
    pid: int,
    rate: float,
    duration: float,
    outdir: Path,
    *,
    scenario: str = "register",
    unit: str = "REGISTER",
    extra_env: dict[str, str] | None = None,
) -> Step:
    """One bench.sh run of C{scenario} over UDP at C{rate} for C{duration} seconds."""
    env = dict(os.environ, OUTDIR=str(outdir), USER_PREFIX=f"r{time.monotonic_ns()}x", **(extra_env or {}))
    argv = [str(BENCH / "bench.sh"), LOOPBACK, str(port), "u1", scenario, f"{rate:g}", f"{duration:g}", str(pid)]
    # bench.sh bounds SIPp itself; this bounds bench.sh.
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=2 * duration + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    values: dict[str, str] = {}
    if lines:
        values = dict(item.split("=", 1) for item in lines[-1].split()[1:] if "=" in item)
    else:
        values = {"error": (done.stdout + done.stderr)[-500:].replace("\n", " ")}
    return Step(rate, values, done.returncode, unit)


def cpu_runs(target: Target, rate: float, duration: float, *, repeat: int, outdir: Path, out: TextIO) -> list[Step]:
    """C{repeat} runs at a fixed rate, each against a fresh server."""
    steps = []
    for _ in range(repeat):
        with target.start() as (port, pid):
            step = bench(port, pid, rate, duration, outdir)
        print(f"  [{target.name}] fixed {step.show()}", file=out, flush=True)
        steps.append(step)
    return steps


def find_max(
    target: Target, start: float, ceiling: float, *, duration: float, max_steps: int, outdir: Path, out: TextIO
) -> tuple[float, Step | None]:
    """
    The highest clean rate: x1.5 from C{start} until a step is not clean
    (or C{ceiling}), then bisection (three steps, or less once within 3%).
    Each step against a fresh server.
    """

    def measure(rate: float) -> Step:
        with target.start() as (port, pid):
            return bench(port, pid, rate, duration, outdir)

    return search(target.name, measure, start, ceiling, max_steps=max_steps, out=out)


def search(
    name: str, measure: Callable[[float], Step], start: float, ceiling: float, *, max_steps: int, out: TextIO
) -> tuple[float, Step | None]:
    """L{find_max} for any C{measure} (one bounded run at a rate, against a fresh server)."""
    best: tuple[float, Step | None] = (0.0, None)
    failed: float | None = None
    steps = 0

    def run(rate: float) -> Step:
        nonlocal steps
        steps += 1
        step = measure(rate)
        print(f"  [{name}] step {steps}: {step.show()}", file=out, flush=True)
        time.sleep(1)
        return step

    rate = start
    while steps < max_steps:
        step = run(rate)
        if not step.clean:
            failed = rate
            break
        best = (rate, step)
        if rate >= ceiling:
            break
        rate = min(round(rate * 1.5), ceiling)
    low, high = best[0], failed
    for _ in range(3):
        if high is None or low == 0 or steps >= max_steps or high - low < 0.03 * low:
            break
        middle = round((low + high) / 2)
        step = run(middle)
        if step.clean:
            low, best = middle, (middle, step)
        else:
            high = middle
    return best


def _median(values: Sequence[float]) -> float:
    values = [value for value in values if not math.isnan(value)]
    return statistics.median(values) if values else float("nan")


#: One target's results: its name, the fixed-rate runs, and each search's
#: highest clean rate with the step that reached it.
Row = tuple[str, list[Step], list[tuple[float, Step | None]]]


def print_table(rows: Sequence[Row], *, unit: str, rate_unit: str, cpu_rate: float, outdir: Path, out: TextIO) -> None:
    """
    The summary both SIPp benchmarks end with: CPU per operation, highest
    clean rate, CPU at that rate.

    @param unit: one operation (C{"REGISTER"}, C{"call"}).
    @param rate_unit: their rate (C{"REGISTER/s"}, C{"calls/s"}).
    """
    per_label, max_label = f"us CPU/{unit}", f"max {rate_unit}"
    width = max(len(per_label), len(max_label)) + 1
    print(file=out)
    print(f"{'target':<18} {per_label:>{width}} {max_label:>{width}} {'(runs)':<22} {'CPU at max':>10}", file=out)
    for name, cpu, maxima in rows:
        per = _median([step.cpu_us_per_op for step in cpu if step.clean])
        if maxima:
            best = _median([rate for rate, _ in maxima])
            runs = "/".join(f"{rate:g}" for rate, _ in maxima)
            at_max = _median([step.number("target_cpu_pct") for _, step in maxima if step is not None])
            print(f"{name:<18} {per:>{width}.0f} {best:>{width}.0f} {runs:<22} {at_max:>9.0f}%", file=out)
        else:
            print(f"{name:<18} {per:>{width}.0f} {'-':>{width}} {'':<22} {'-':>10}", file=out)
    print(f"({per_label}: median at {cpu_rate:g} {rate_unit}; SIPp logs in {outdir})", file=out)


def load_options(
    argv: Sequence[str],
    *,
    description: str | None,
    unit: str,
    cpu_rate: float,
    start: float,
    ceiling: float,
    kamailio_ceiling: float,
    extra: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
) -> argparse.Namespace:
    """
    The command line the SIPp benchmarks share (this one and
    C{proxy_calls.py}), with the defaults of one workload.

    @param description: the benchmark's own description (its docstring).
    @param unit: what is measured, for the help text (C{"REGISTER"}, C{"call"}).
    @param extra: adds the workload's own options.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    extra(parser)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement [%(default)s]")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per step [%(default)s]")
    parser.add_argument(
        "--cpu-rate", type=float, default=cpu_rate, help=f"rate of the CPU-per-{unit} runs [%(default)s]"
    )
    parser.add_argument("--start", type=float, default=start, help="first rate of the search [%(default)s]")
    parser.add_argument("--ceiling", type=float, default=ceiling, help="highest rate tried for sipstack [%(default)s]")
    parser.add_argument("--max-steps", type=int, default=10, help="bench.sh runs per search at most [%(default)s]")
    parser.add_argument("--cpu-only", action="store_true", help="only the fixed-rate CPU runs, no search")
    parser.add_argument("--no-kamailio", action="store_true", help="skip Kamailio even if installed")
    parser.add_argument("--kamailio-children", type=int, default=1, help="Kamailio UDP workers [%(default)s]")
    parser.add_argument(
        "--kamailio-ceiling", type=float, default=kamailio_ceiling, help="highest rate tried [%(default)s]"
    )
    parser.add_argument("--quick", action="store_true", help="one repeat, 3 s steps")
    parser.add_argument("--profile", type=Path, help="profile the server during one fixed-rate run into this file")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra argument for twistd sip, e.g. --server-arg=--gc=default (repeatable)",
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.repeat, options.duration = 1, 3.0
    return options


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    def stores(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--stores", default="memory,sqlite", help="comma-separated: memory, sqlite [%(default)s]")

    return load_options(
        argv,
        description=__doc__,
        unit="REGISTER",
        cpu_rate=1000.0,
        start=1500.0,
        ceiling=12000.0,
        kamailio_ceiling=30000.0,
        extra=stores,
    )


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    options = _parse(sys.argv[1:] if argv is None else argv)
    if shutil.which("sipp") is None or not (BENCH / "bench.sh").exists():
        print("needs sipp (Debian sip-tester) and ../shared/bench/bench.sh", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-registrar-bench-"))
    outdir = workdir / "sipp"
    stores = [store.strip() for store in options.stores.split(",") if store.strip()]
    if options.profile is not None:
        store = stores[0]
        target = Target(
            f"sipstack/{store}",
            functools.partial(sipstack_server, store, workdir, options.profile, options.server_arg),
        )
        cpu_runs(target, options.cpu_rate, options.duration, repeat=1, outdir=outdir, out=out)
        print(f"profile of {target.name} at {options.cpu_rate:g}/s written to {options.profile}", file=out)
        return 0

    targets = [
        Target(f"sipstack/{store}", functools.partial(sipstack_server, store, workdir, None, options.server_arg))
        for store in stores
    ]
    ceilings = {target.name: options.ceiling for target in targets}
    if not options.no_kamailio and shutil.which("kamailio") and (BENCH / "start-kamailio.sh").exists():
        kamailio = Target(
            f"kamailio/{options.kamailio_children}w", functools.partial(kamailio_server, options.kamailio_children)
        )
        targets.append(kamailio)
        ceilings[kamailio.name] = options.kamailio_ceiling
    elif not options.no_kamailio:
        print("kamailio is not installed: no reference numbers", file=out)

    print(
        f"# REGISTER over UDP, no authentication; {options.repeat} repeats, {options.duration:g} s steps; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        file=out,
    )
    rows = []
    for target in targets:
        cpu = cpu_runs(target, options.cpu_rate, options.duration, repeat=options.repeat, outdir=outdir, out=out)
        maxima: list[tuple[float, Step | None]] = []
        if not options.cpu_only:
            for _ in range(options.repeat):
                found = find_max(
                    target,
                    options.start,
                    ceilings[target.name],
                    duration=options.duration,
                    max_steps=options.max_steps,
                    outdir=outdir,
                    out=out,
                )
                print(f"  [{target.name}] highest clean rate: {found[0]:g}/s", file=out, flush=True)
                maxima.append(found)
        rows.append((target.name, cpu, maxima))

    print_table(rows, unit="REGISTER", rate_unit="REGISTER/s", cpu_rate=options.cpu_rate, outdir=outdir, out=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
