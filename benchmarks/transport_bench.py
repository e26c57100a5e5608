"""
How many OPTIONS per second the transport layer answers over UDP and TCP, and at what CPU cost.

This drives L{benchmarks.options_responder} (a stateless responder on
L{TransportLayer<sipstack.transport.layer.TransportLayer>}) with SIPp through
the team's shared load harness, so the numbers are measured exactly as
Kamailio's in that harness's README are, and can be read side by side.

For each transport it:

  1. runs C{find-max.sh} with the C{options} scenario: a geometric ramp from
     C{--start} to at most C{--max-rate}, then bisection, every step bounded
     by C{bench.sh} in calls (rate x duration) and time;
  2. confirms the maximum with one longer C{bench.sh} run, because
     C{find-max.sh} tolerates 0.1% failures and the figure wanted here is the
     rate sustained with I{no} failed transaction: a confirmation run with any
     failed, unfinished or uncreated call steps down 10% and tries again (at
     most C{--confirm-tries} times);
  3. reports the responder's CPU over the confirmed run (utime+stime from
     C{/proc}, as C{benchlib.py} measures it: percent of one core).

Then, unless C{--profile none}, it profiles the responder at a moderate rate
(C{--profile-rate}, UDP) with py-spy (sampling, with C{--gil}) or cProfile,
and prints the functions with the most own time.  Traffic goes to 127.0.0.1 only, as C{bench.sh} enforces.

Run::

    .venv/bin/python benchmarks/transport_bench.py                 # defaults: 5 s steps, cap 20000/s
    .venv/bin/python benchmarks/transport_bench.py --transports udp --max-rate 8000 --profile none
    .venv/bin/python benchmarks/transport_bench.py --transports none --profile-rate 2500   # profile only
    .venv/bin/python benchmarks/transport_bench.py --json /tmp/transport-bench.json

Needs SIPp (Debian C{sip-tester}) and the harness in C{/work/shared/bench}
(C{--bench-dir}); py-spy (C{pip install py-spy}) for C{--profile py-spy}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path starts with benchmarks/: put the checkout first
    # so that the benchmarks package (and this working tree's sipstack) is found.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.profiles import Profile, from_collapsed, from_pstats, own_time_table

HERE = Path(__file__).resolve().parent
RESPONDER = HERE / "options_responder.py"
DEFAULT_BENCH_DIR = HERE.parent.parent / "shared" / "bench"
HOST = "127.0.0.1"
TRANSPORTS = {"udp": "u1", "tcp": "t1"}
# From /work/shared/bench/README.md (same kind of 2-core machine): SIPp UAC
# against a SIPp answerer, i.e. the generator's own ceiling.
SIPP_ALONE_OPTIONS_PER_S = "58,000-59,000"


def log(message: str) -> None:
    """Progress goes to stderr so that stdout carries only the results."""
    print(f"[transport_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_result_line(line: str) -> dict[str, str]:
    """The C{k=v} pairs of a harness C{RESULT}/C{STEP}/C{MAX} line (values never contain spaces)."""
    pairs: dict[str, str] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def _number(pairs: Mapping[str, str], key: str) -> float | None:
    try:
        return float(pairs[key])
    except (KeyError, ValueError):
        return None


@dataclass
class Confirmed:
    """
    One C{bench.sh} run at a fixed rate, as its C{RESULT} line reported it.

    @ivar rate: the offered OPTIONS/s.
    @ivar result: every field of the C{RESULT} line.
    @ivar clean: passed C{bench.sh}'s criterion I{and} had no failed,
        unfinished or uncreated call.
    """

    rate: int
    result: dict[str, str]
    clean: bool


@dataclass
class TransportReport:
    """
    What was measured for one transport.

    @ivar transport: C{udp} or C{tcp}.
    @ivar find_max: the rate C{find-max.sh} reported (0.1% failures allowed).
    @ivar first_failing: the lowest rate it saw fail, or C{None} if the cap held.
    @ivar steps: its C{STEP} lines, parsed.
    @ivar confirmed: the confirmation runs, last one decisive.
    """

    transport: str
    find_max: int = 0
    first_failing: str = "none"
    steps: list[dict[str, str]] = field(default_factory=list)
    confirmed: list[Confirmed] = field(default_factory=list)

    @property
    def sustained(self) -> Confirmed | None:
        """The confirmation run that had no failure, if any."""
        clean = [run for run in self.confirmed if run.clean]
        return clean[-1] if clean else None


class Responder:
    """
    The responder process: started, watched for its READY line, stopped with SIGTERM.

    SIGTERM is how it is meant to stop (it closes its listeners and logs how
    many requests it answered); SIGKILL is only the fallback after a grace
    period, and only ever for the one pid this class started.
    """

    def __init__(self, port: int, log_file: Path, *, cprofile: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self.cprofile = cprofile
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    @property
    def pid(self) -> int:
        """The responder's pid (its CPU is what C{bench.sh} measures)."""
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        """Whether it is still running (it must survive every load step)."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """
        Start it and wait until both listeners are bound.

        @raise RuntimeError: it exited, or did not report READY in time.
        """
        command = [sys.executable, str(RESPONDER), "--port", str(self.port), "--log-level", "info"]
        if self.cprofile is not None:
            command += ["--cprofile", str(self.cprofile)]
        self._stderr = self.log_file.open("a")
        # Its own session, as a daemon would have: with the kernel's
        # autogroup scheduling (on by default) each session shares the CPUs
        # fairly, so on a busy machine the responder gets a core-sized share
        # of its own instead of splitting one with whatever else runs in
        # ours.  (nice does not help: it only orders tasks within a session.)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        stdout = self._process.stdout
        assert stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].startswith("READY"):
            self.stop()
            raise RuntimeError(f"the responder did not start; see {self.log_file}")
        log(f"responder pid {self.pid}: {ready[0].strip()}")

    def stop(self, grace: float = 10.0) -> int | None:
        """Send SIGTERM, wait, and return its exit status (C{None} if it had to be killed)."""
        process, self._process = self._process, None
        if process is None:
            return None
        status: int | None = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"responder {process.pid} ignored SIGTERM for {grace} s; killing it")
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return status

    def answered(self) -> str:
        """The responder's own count of answered requests, from its last stop line."""
        lines = [ln for ln in self.log_file.read_text().splitlines() if "Stopping: answered" in ln]
        return lines[-1].split("Stopping: ", 1)[1] if lines else "?"


class Harness:
    """
    The shared scripts, run with bounded time and their output kept.

    Each script is started in its own session so that on a timeout the
    script and the SIPp it started (and only those) can be stopped together;
    that also gives SIPp its own autogroup share of the CPUs.
    """

    def __init__(self, bench_dir: Path, outdir: Path, env: Mapping[str, str]) -> None:
        self.bench_dir = bench_dir
        self.outdir = outdir
        self.env = {**os.environ, "OUTDIR": str(outdir), **env}

    def run(self, script: str, args: Sequence[str], bound: float, env: Mapping[str, str] | None = None) -> list[str]:
        """Run C{script} from the harness, echoing its output to stderr; return its lines."""
        command = [str(self.bench_dir / script), *args]
        log("$ " + " ".join(command))
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**self.env, **(env or {})},
            start_new_session=True,
        )
        timer = threading.Timer(bound, _stop_session, (process,))
        timer.start()
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                print("    " + line.rstrip("\n"), file=sys.stderr, flush=True)
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                _stop_session(process)
                process.wait()
        return lines


def _stop_session(process: subprocess.Popen[str]) -> None:
    log(f"time bound reached, stopping harness process group {process.pid}")
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)


def bench_bound(duration: float) -> float:
    """C{bench.sh}'s own worst case (SIPp's hard timeout plus margins), plus slack."""
    return (2 * duration + 20) + 15 + 30


def find_max(harness: Harness, responder: Responder, transport: str, options: argparse.Namespace) -> TransportReport:
    """Step 1: C{find-max.sh} for one transport."""
    report = TransportReport(transport)
    bound = options.max_steps * (bench_bound(options.duration) + options.cooldown)
    lines = harness.run(
        "find-max.sh",
        [HOST, str(options.port), TRANSPORTS[transport], "options", str(options.start), str(options.max_rate),
         str(options.duration), str(responder.pid)],
        bound,
        env={"MAX_STEPS": str(options.max_steps), "COOLDOWN": str(options.cooldown), "FACTOR": str(options.factor)},
    )  # fmt: skip
    for line in lines:
        if line.startswith("STEP "):
            report.steps.append(parse_result_line(line))
        elif line.startswith("MAX "):
            pairs = parse_result_line(line)
            report.find_max = int(float(pairs.get("max_sustained_cps", "0")))
            report.first_failing = pairs.get("first_failing_cps", "none")
    return report


def bench_once(harness: Harness, responder: Responder, transport: str, rate: int, duration: float) -> Confirmed:
    """One C{bench.sh} run at C{rate}: the result line, and whether it had no failure at all."""
    lines = harness.run(
        "bench.sh",
        [HOST, str(responder.port), TRANSPORTS[transport], "options", str(rate), str(duration), str(responder.pid)],
        bench_bound(duration),
    )
    results = [parse_result_line(line) for line in lines if line.startswith("RESULT ")]
    result = results[-1] if results else {"verdict": "ERROR"}
    bad = sum(_number(result, key) or 0 for key in ("failed", "unfinished", "not_created"))
    clean = result.get("verdict") == "PASS" and bad == 0 and "successful" in result
    return Confirmed(rate, result, clean)


def confirm(harness: Harness, responder: Responder, report: TransportReport, options: argparse.Namespace) -> None:
    """Step 2: a longer run at the maximum, stepping down 10% until one has no failure."""
    rate = report.find_max
    for _ in range(options.confirm_tries):
        if rate <= 0 or not responder.alive():
            return
        run = bench_once(harness, responder, report.transport, rate, options.confirm_duration)
        report.confirmed.append(run)
        if run.clean:
            return
        rate = int(rate * 0.9)
        time.sleep(options.cooldown)


# Profiling


def profile_with_py_spy(
    harness: Harness, responder: Responder, options: argparse.Namespace
) -> tuple[Profile, Confirmed]:
    """
    Sample the running responder while C{bench.sh} loads it over UDP.

    py-spy samples from outside, so the responder runs its real code at
    nearly its real speed.  It samples only while the thread holds the GIL
    (C{--gil}): without that, py-spy counts the time the thread spends off
    CPU inside C{sendto} (after waking SIPp on a busy 2-core box, the
    scheduler runs SIPp first) as busy, and C{Port.write} then shows 30-55%
    of the samples while perf shows 83% of the responder's CPU in the
    interpreter and 12% in the kernel.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = harness.outdir / "py-spy.raw"
    seconds = int(options.profile_seconds)
    sampler = subprocess.Popen(
        [py_spy, "record", "--pid", str(responder.pid), "--format", "raw", "--function", "--gil",
         "--rate", "500", "--duration", str(seconds), "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    run = bench_once(harness, responder, "udp", options.profile_rate, seconds)
    try:
        _, error = sampler.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        sampler.terminate()
        _, error = sampler.communicate()
    if sampler.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({sampler.returncode}): {error.strip()[-500:]}")
    profile = from_collapsed(out.read_text().splitlines())
    log(f"py-spy: {profile.busy} busy samples, {profile.idle} waiting in the reactor's poll")
    return profile, run


def profile_with_cprofile(harness: Harness, options: argparse.Namespace, log_file: Path) -> tuple[Profile, Confirmed]:
    """
    Run a responder under cProfile through one UDP load run, and rank by own time.

    cProfile instruments every call, so the responder is several times
    slower under it; the ranking is still useful, the rate is not.  It times
    wall clock, so C{sendto} also carries the time the responder waits for
    the CPU after waking SIPp (30% of "busy" at 300/s on a loaded 2-core
    box): prefer py-spy with C{--gil}.
    """
    stats_file = harness.outdir / "responder.prof"
    responder = Responder(options.port, log_file, cprofile=stats_file)
    responder.start()
    try:
        run = bench_once(harness, responder, "udp", options.profile_rate, options.profile_seconds)
    finally:
        responder.stop()
    return from_pstats(stats_file), run


# Reporting


def _cell(pairs: Mapping[str, str] | None, key: str) -> str:
    return pairs.get(key, "-") if pairs else "-"


def summary_table(reports: Sequence[TransportReport]) -> str:
    """The results, one row per transport, as a Markdown table."""
    head = (
        "| transport | find-max (<=0.1% fail) | first failing | sustained, 0 failures (OPTIONS/s) | achieved/s "
        "| failed | retrans | responder CPU % of 1 core | CPU ms/OPTIONS | SIPp UAC CPU % | host busy % of 200 |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for report in reports:
        run = report.sustained
        result = run.result if run else None
        rows.append(
            "| "
            + " | ".join(
                [
                    report.transport.upper(),
                    str(report.find_max),
                    report.first_failing,
                    str(run.rate) if run else "not confirmed",
                    _cell(result, "achieved_cps"),
                    _cell(result, "failed"),
                    _cell(result, "retransmissions"),
                    _cell(result, "target_cpu_pct"),
                    _cell(result, "target_cpu_ms_per_call"),
                    _cell(result, "sipp_uac_cpu_pct"),
                    _cell(result, "host_busy_pct"),
                ]
            )
            + " |"
        )
    return "\n".join(rows)


@contextmanager
def running(responder: Responder) -> Iterator[Responder]:
    """The responder, stopped with SIGTERM whatever happens."""
    responder.start()
    try:
        yield responder
    finally:
        status = responder.stop()
        log(f"responder stopped (exit status {status}): {responder.answered()}")


def _options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5090, help="responder port on 127.0.0.1 (default 5090)")
    parser.add_argument("--transports", default="udp,tcp", help="udp, tcp, both (default) or none")
    parser.add_argument("--start", type=int, default=500, help="first offered rate, OPTIONS/s (default 500)")
    parser.add_argument("--max-rate", type=int, default=20_000, help="rate cap, OPTIONS/s (default 20000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per find-max step (default 5)")
    parser.add_argument("--factor", type=float, default=1.5, help="find-max ramp factor (default 1.5)")
    parser.add_argument("--max-steps", type=int, default=12, help="find-max steps per transport (default 12)")
    parser.add_argument("--cooldown", type=float, default=3.0, help="seconds between runs (default 3)")
    parser.add_argument("--confirm-duration", type=float, default=10.0, help="seconds of the confirmation run")
    parser.add_argument("--confirm-tries", type=int, default=3, help="confirmation runs, 10%% lower each (default 3)")
    parser.add_argument("--profile", choices=["py-spy", "cprofile", "none"], default="py-spy")
    parser.add_argument("--profile-rate", type=int, default=2500, help="UDP OPTIONS/s while profiling (default 2500)")
    parser.add_argument("--profile-seconds", type=float, default=15.0, help="seconds profiled (default 15)")
    parser.add_argument("--top", type=int, default=10, help="functions listed from the profile (default 10)")
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR, help="the shared SIPp harness")
    parser.add_argument("--outdir", type=Path, default=Path("/tmp/sipstack-transport-bench"), help="run artefacts")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args(argv)
    options.transports = [t.strip() for t in options.transports.split(",") if t.strip() not in ("", "none")]
    if any(t not in TRANSPORTS for t in options.transports):
        parser.error("--transports takes udp and/or tcp, or none")
    if not 0 < options.port < 65536:
        parser.error("--port must be in 1..65535")
    if not 0 < options.start <= options.max_rate or options.duration <= 0 or options.confirm_duration <= 0:
        parser.error("need 0 < --start <= --max-rate and positive durations")
    if not (options.bench_dir / "bench.sh").exists():
        parser.error(f"no bench.sh in {options.bench_dir}")
    if shutil.which("sipp") is None:
        parser.error("sipp not found (apt-get install sip-tester)")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each transport, profile once, print the tables; 0 unless something broke."""
    options = _options(sys.argv[1:] if argv is None else argv)
    options.outdir.mkdir(parents=True, exist_ok=True)
    harness = Harness(options.bench_dir, options.outdir, {})
    log_file = options.outdir / "responder.log"
    reports: list[TransportReport] = []
    profile: tuple[Profile, Confirmed] | None = None
    profile_error = ""
    with running(Responder(options.port, log_file)) as responder:
        for transport in options.transports:
            report = find_max(harness, responder, transport, options)
            time.sleep(options.cooldown)
            confirm(harness, responder, report, options)
            reports.append(report)
            if not responder.alive():
                log("the responder died under load; see " + str(log_file))
                break
            time.sleep(options.cooldown)
        if options.profile == "py-spy" and responder.alive():
            try:
                profile = profile_with_py_spy(harness, responder, options)
            except (OSError, RuntimeError) as error:
                profile_error = str(error)
    if options.profile == "cprofile":
        time.sleep(options.cooldown)
        profile = profile_with_cprofile(harness, options, log_file)

    print("\n## sipstack transport layer: stateless OPTIONS -> 200 on 127.0.0.1 (SIPp, /work/shared/bench)\n")
    print(summary_table(reports))
    print(f"\nFor comparison, SIPp alone (UAC -> SIPp answerer), shared README: {SIPP_ALONE_OPTIONS_PER_S} OPTIONS/s.")
    for report in reports:
        steps = ", ".join(f"{s.get('rate')}:{s.get('verdict')}" for s in report.steps)
        print(f"{report.transport} find-max steps (rate:verdict): {steps}")
    if profile is not None:
        found, run = profile
        print(
            f"\n## Top {options.top} by own time ({options.profile}, UDP at {run.rate}/s offered, "
            f"{run.result.get('achieved_cps', '?')}/s achieved, responder CPU {run.result.get('target_cpu_pct', '?')}%;"
            f" {found.busy} busy {found.unit}, {found.idle} idle {found.unit} in the reactor's poll left out)\n"
        )
        print(own_time_table(found, options.top))
    elif profile_error:
        print(f"\nprofile failed: {profile_error}")
    if options.json is not None:
        data = {
            "reports": [asdict(r) | {"sustained": asdict(r.sustained) if r.sustained else None} for r in reports],
            "profile": None
            if profile is None
            else {"own": profile[0].own[: options.top * 3], "busy": profile[0].busy, "idle": profile[0].idle},
        }
        options.json.write_text(json.dumps(data, indent=1))
    return 0 if all(r.sustained is not None for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
