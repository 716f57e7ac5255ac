"""The web view under load: how soon a page shows an answer after the terminal does, and what 20 viewers cost.

One run: `ramanedge emulate` plays spectra every ``--interval`` seconds; `ramanedge listen PORT --json --web
127.0.0.1:0` identifies them (its stdout is the terminal: each JSON line is stamped when it arrives here).
Phase 1, ``--seconds`` with no viewer: identifications per second and their latency (frame -> answer).
Phase 2, the same time with ``--viewers`` server-sent-event clients on loopback and one headless Chromium
page (where Debian's chromium and chromium-driver are installed): every viewer must get every answer of the
phase; each answer's delay from the terminal's line to the event at a client, and to the page drawing it
(a MutationObserver on the page's history list, stamped with the browser's clock, the same machine's);
identifications per second and latency again; listen's RSS at the phase's start and end.

    python benchmarks/web_view.py [--seconds 60] [--viewers 20] [--interval 0.2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Terminal(threading.Thread):
    """Reads listen's JSON lines: time of arrival of each answer (by its ``time``), and its latency_ms."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.seen: dict[str, float] = {}
        self.latency: dict[str, float] = {}

    def run(self) -> None:
        for line in self.stream:
            now = time.time()
            record = json.loads(line)
            self.seen[record["time"]] = now
            self.latency[record["time"]] = record["latency_ms"]


class Viewer(threading.Thread):
    """One server-sent-events client: arrival time of each answer event, by the record's ``time``."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.port, self.token = port, token
        self.seen: dict[str, float] = {}
        self.numbers: list[int] = []
        self.n_to_time: dict[int, str] = {}
        self.stop = False

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", f"/api/events?token={self.token}")
        response = connection.getresponse()
        buffer = b""
        while not self.stop:
            chunk = response.read1(1 << 16)
            if not chunk:
                break
            now = time.time()
            *events, buffer = (buffer + chunk).split(b"\n\n")
            for event in events:
                if event.startswith(b"event: answer"):
                    data = json.loads(event.split(b"data: ", 1)[1])
                    self.seen[data["record"]["time"]] = now
                    self.numbers.append(data["n"])
                    self.n_to_time[data["n"]] = data["record"]["time"]
        connection.close()


def chromium_page(url: str, profile: Path):
    """A headless Chromium on the page, recording when each answer is drawn; None where there is none."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(url)
    driver.execute_script(
        "window.drawn = {}; new MutationObserver(() => { const li = document.querySelector('#history li');"
        " if (li && !(li.value in window.drawn)) window.drawn[li.value] = Date.now() / 1000; })"
        ".observe(document.getElementById('history'), {childList: true});"
    )
    return driver


def phase(terminal: Terminal, seconds: float) -> tuple[list[str], float]:
    start = time.time()
    time.sleep(seconds)
    answers = [t for t, at in terminal.seen.items() if start <= at < start + seconds]
    return answers, len(answers) / seconds


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between the emulator's spectra")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ramanedge-web-bench-"))
    emulator = subprocess.Popen([sys.executable, "-m", "edge", "emulate", "--interval", str(args.interval)], stdout=subprocess.PIPE, text=True)
    assert emulator.stdout is not None
    port = emulator.stdout.readline().strip()
    listen = subprocess.Popen(
        [sys.executable, "-m", "edge", "listen", port, "--json", "--web", "127.0.0.1:0", "--library", str(tmp / "library")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert listen.stdout is not None and listen.stderr is not None
    stderr = listen.stderr
    url = ""
    while "web view: " not in url:
        url = listen.stderr.readline()
    url = url.split("web view: ", 1)[1].split()[0]
    web_port, token = int(url.split(":")[2].split("/")[0]), url.split("token=")[1]
    terminal = Terminal(listen.stdout)
    terminal.start()
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()  # keep stderr drained
    driver = None
    try:
        time.sleep(3.0)  # connected and warm
        alone, rate_alone = phase(terminal, args.seconds)
        viewers = [Viewer(web_port, token) for _ in range(args.viewers)]
        for viewer in viewers:
            viewer.start()
        driver = chromium_page(url, tmp / "chromium")
        time.sleep(2.0)
        rss_start = rss_mb(listen.pid)
        watched, rate_watched = phase(terminal, args.seconds)
        rss_end = rss_mb(listen.pid)
        drawn = driver.execute_script("return window.drawn") if driver is not None else {}
    finally:
        for process in (listen, emulator):
            process.send_signal(signal.SIGINT)
            process.wait(15)
        if driver is not None:
            driver.quit()
        for viewer in viewers if "viewers" in locals() else []:
            viewer.stop = True
    lost = [sum(1 for t in watched if t not in v.seen) for v in viewers]
    gaps = [sum(1 for a, b in zip(v.numbers, v.numbers[1:]) if b != a + 1) for v in viewers]
    delays = [v.seen[t] - terminal.seen[t] for v in viewers for t in watched if t in v.seen]
    n_to_time = viewers[0].n_to_time if viewers else {}
    page = [float(at) - terminal.seen[n_to_time[int(n)]] for n, at in drawn.items() if int(n) in n_to_time and n_to_time[int(n)] in watched]
    lat_alone = [terminal.latency[t] for t in alone]
    lat_watched = [terminal.latency[t] for t in watched]
    print(f"web view benchmark: emulator every {args.interval} s, {args.seconds:.0f} s per phase, {args.viewers} SSE viewers"
          + (" + 1 headless Chromium page" if driver is not None else " (no Chromium here: page delays not measured)"))
    print("| phase | identifications/s | latency median / p95 (ms) | answers |")
    print("|---|---|---|---|")
    print(f"| no viewer | {rate_alone:.2f} | {statistics.median(lat_alone):.1f} / {percentile(lat_alone, 0.95):.1f} | {len(alone)} |")
    print(f"| {args.viewers} viewers{' + page' if driver is not None else ''} | {rate_watched:.2f} | "
          f"{statistics.median(lat_watched):.1f} / {percentile(lat_watched, 0.95):.1f} | {len(watched)} |")
    print()
    print(f"answers lost, per viewer: max {max(lost)} (of {len(watched)}); gaps in the numbering: max {max(gaps)}")
    print(f"event at a viewer after the terminal's line: median {1e3 * statistics.median(delays):.1f} ms, p99 {1e3 * percentile(delays, 0.99):.1f} ms, max {1e3 * max(delays):.1f} ms")
    if page:
        print(f"answer drawn on the page after the terminal's line: median {1e3 * statistics.median(page):.1f} ms, "
              f"p99 {1e3 * percentile(page, 0.99):.1f} ms, max {1e3 * max(page):.1f} ms ({len(page)} answers)")
    print(f"listen RSS: {rss_start:.1f} MB at the phase's start, {rss_end:.1f} MB at its end (growth {rss_end - rss_start:+.1f} MB)")


if __name__ == "__main__":
    main()
