"""Start-up benchmark: how long the commands a person types most take, against `python -c pass`.

Run: .venv/bin/python bench/startup.py [--runs N]
Prints, in one run, the median wall time of N runs (after one warm-up) of each command as a whole
process, and its ratio to the interpreter starting and doing nothing (`python -c pass`), which is
the floor no command can go below on this machine at this moment:
- `portfolio-monitor --help`                                 (target < 0.4 s on an idle machine)
- `portfolio-monitor status` on a small SQLite file it creates (target < 0.4 s on an idle machine)
- `portfolio-monitor calc` on the packaged Binance example
- `portfolio-monitor check-config` on a one-account configuration
The commands run one after the other in rounds (pass, help, status, ...), so a machine that gets
busier during the run slows all of them alike and the ratios stay honest; quote medians and ratios.
It also prints the load average and each command's CPU time (user + system): on a shared machine
that is never idle, the CPU time is the closer estimate of the wall time on an idle one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.domain.codec import state_from_json  # noqa: E402
from monitor.domain.margin import assess  # noqa: E402
from monitor.domain.model import Snapshot  # noqa: E402

EXAMPLE = ROOT / "monitor" / "examples" / "binance_cross_two_longs.json"
PROGRAM = Path(sys.executable).with_name("portfolio-monitor")


async def _small_database(url: str) -> None:
    """One account with an hour of minute snapshots: what `status` reads on a fresh install."""
    import json

    from monitor.storage.migrate import prepare_database

    state = state_from_json(json.loads(EXAMPLE.read_text()))
    risk = assess(state)
    now = datetime.now(UTC)
    store = await prepare_database(url)
    try:
        await store.register_account(
            "main", venue=state.venue.value, asset="USDT", poll_interval=60, now=now
        )
        for minute in range(60, -1, -1):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(
                    Snapshot("main", now - timedelta(minutes=minute), state, risk)
                )
    finally:
        await store.close()


def _time(command: list[str]) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        # A command that failed early would time its error path, not its work.
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    """Print the median start-up time of each command and its ratio to `python -c pass`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs per command")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        directory = Path(tmp)
        url = f"sqlite:///{directory / 'monitor.db'}"
        asyncio.run(_small_database(url))
        config = directory / "config.toml"
        config.write_text(
            f'state_dir = "{directory}"\n\n[notify.webhooks.phone]\nkind = "ntfy"\n'
            'topic = "bench"\n\n'
            '[accounts.main]\nvenue = "binance-usdm"\napi_key = "k"\napi_secret = "s"\n'
        )
        program = str(PROGRAM)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [program, "--help"],
            "status": [program, "status", "--config", str(config), "--format", "table"],
            "calc (example)": [program, "calc", str(EXAMPLE), "--format", "table"],
            "check-config": [program, "check-config", "--config", str(config)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(runs + 1):
            for name, command in commands.items():
                elapsed, used = _time(command)
                if round_:  # the first round warms the file cache and is not counted
                    times[name].append(elapsed)
                    cpu[name].append(used)
    baseline = statistics.median(times["python -c pass"])
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"load average {load} (1, 5, 15 min) on {os.cpu_count()} CPUs")
    print(
        f"start-up time, median of {runs} runs (min-max), ratio to `python -c pass`; CPU time "
        "(user + system, median), which a busy machine inflates far less than wall time"
    )
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"  {name:<16} {median * 1000:6.0f} ms  ({min(samples) * 1000:.0f}-"
            f"{max(samples) * 1000:.0f})  x{median / baseline:5.1f}   CPU "
            f"{statistics.median(cpu[name]) * 1000:4.0f} ms"
        )


if __name__ == "__main__":
    main()
