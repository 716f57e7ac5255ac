"""The live screen of ``ramanedge listen``: top-3 with bars, a sketch of the spectrum, the link's health."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from edge.answer import ADVICE
from edge.listen import Identification, Listener
from ramancore.preprocessing import GRID

BLOCKS = " ▁▂▃▄▅▆▇█"
#: Characters around the sketch on its line: the panel's borders and padding, and the row label.
SKETCH_MARGIN = 4 + 11
STATE_STYLE = {
    "identified": "bold green",
    "possible match": "bold yellow",
    "not in library": "bold magenta",
    "signal too weak": "bold yellow",
    "saturated": "bold red",
}


def sparkline(values: np.ndarray, width: int = 72) -> str:
    """A spectrum as one line of block characters (max of each bin, so bands survive)."""
    bins = np.array_split(np.asarray(values, dtype=np.float64), width)
    peaks = np.array([b.max() if b.size else 0.0 for b in bins])
    top = peaks.max() or 1.0
    return "".join(BLOCKS[int(round(v / top * (len(BLOCKS) - 1)))] for v in np.clip(peaks, 0, None))


def bar(probability: float, width: int = 30) -> str:
    filled = int(round(probability * width))
    return "█" * filled + "░" * (width - filled)


@dataclass
class DemoScore:
    """The demo's running score: the mineral played against the one named (top-1)."""

    total: int = 0
    named: int = 0
    right: int = 0
    last_played: str | None = None
    states: Counter[str] = field(default_factory=Counter)  #: answers by state, for the demo's closing line

    def add(self, played: str | None, result: Identification) -> None:
        self.total += 1
        self.states[result.state] += 1
        self.last_played = played
        if result.top:
            self.named += 1
            self.right += int(result.top[0][0] == played)


def render(listener: Listener, score: DemoScore | None = None, width: int = 80) -> Panel:
    """The live screen for a terminal ``width`` columns wide (the sketch shrinks to fit, never wraps)."""
    sketch = max(16, width - SKETCH_MARGIN)
    stats = listener.stats
    ok, rejected = listener.frame_counts()
    device = stats.device
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text(f"{device.name} ({device.serial})" if device else listener.port_name, style="bold"),
        Text(f"{listener.protocol} on {listener.port_name}"),
        Text(f"frames ok {ok}  rejected {rejected}  reconnects {stats.reconnects}"),
    )
    parts: list = [head, Text(stats.status, style="dim")]
    last: Identification | None = stats.last
    if last:
        parts.append(
            Text(
                f"identification {stats.identifications}  (device frame {last.seq})  {last.state}"
                + (f"  confidence {last.answer.confidence:.2f}" if last.answer.confidence is not None else "")
                + ("  (user library)" if last.answer.source == "user library" else ""),
                style=STATE_STYLE.get(last.state, ""),
            )
        )
        if last.answer.group:
            parts.append(Text(f"{last.answer.named}", style=STATE_STYLE.get(last.state, "")))
        if last.state in ADVICE:
            parts.append(Text(ADVICE[last.state], style=STATE_STYLE.get(last.state, "")))
        if score is not None:
            hit = bool(last.top) and last.top[0][0] == score.last_played
            mark = Text("✔ " if hit else "✘ ", style="bold green" if hit else "bold red")
            parts.append(
                mark + Text(f"played {score.last_played}   score {score.right}/{score.named} named correctly")
            )
        table = Table(show_header=False, box=None, padding=(0, 1))
        for rank, (mineral, p) in enumerate(last.top, start=1):
            style = "green" if rank == 1 and last.state == "identified" else ""
            table.add_row(f"{rank}.", Text(mineral, style=style), bar(p), f"{100 * p:5.1f} %")
        parts.append(table)
        if last.spectrum is not None:
            parts.append(Text("measured   " + sparkline(last.spectrum, sketch), style="cyan"))
            library_hit = last.answer.library_hit
            if library_hit and last.answer.reference is not None:
                parts.append(Text("best hit   " + sparkline(last.answer.reference, sketch), style="magenta"))
                parts.append(Text(f"{'':11}library: {library_hit['mineral']} ({library_hit['id']}) HQI {library_hit['hqi']:.0f}", style="magenta"))
            mixture = last.answer.mixture
            if mixture is not None and len(mixture.components) > 1:
                parts.append(Text("fitted sum " + sparkline(mixture.fitted, sketch), style="green"))
                for component in mixture.components:
                    parts.append(Text(f"{component.share:9.2f}  " + sparkline(component.curve, sketch), style="yellow"))
                    parts.append(Text(f"{'':11}{component.mineral} ({component.id}): {component.share:.2f} of the fitted signal", style="yellow"))
            elif mixture is not None:
                parts.append(Text(f"{'':11}mixture fit: one mineral ({mixture.components[0].mineral})", style="green"))
            label = "Raman shift, cm^-1" if sketch >= 30 else "cm^-1"
            parts.append(Text(f"{'':11}{GRID[0]:.0f}{label:^{sketch - 6}}{GRID[-1]:.0f}", style="dim"))
        median = float(np.median(stats.latencies[-50:]))
        parts.append(Text(f"latency {last.latency_ms:.1f} ms (median {median:.1f} ms)  identifications {stats.identifications}", style="dim"))
    return Panel(Group(*parts), title="ramanedge listen", subtitle="a: add to user library   Ctrl-C: stop")
