"""What the CLI shows: live progress, the summary table, one-line errors (used by the CLI only)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from factory.progress import Progress, RunStats

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def error_line(message: str) -> None:
    errors.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _top_drops(stats: RunStats, n: int = 3) -> str:
    top = stats.dropped.most_common(n)
    if not top:
        return ""
    return "\n  dropped: " + ", ".join(f"{reason} {count}" for reason, count in top)


class LiveProgress(Progress):
    """Accepted rows, tokens/s, acceptance rate and ETA, redrawn in place."""

    def __init__(self) -> None:
        self._live: Live | None = None
        self._stage = "starting"
        self._stats: RunStats | None = None
        self._batch = ""
        self._started = time.monotonic()

    def _render(self) -> Text:
        s = self._stats
        if s is None:
            return Text(f"⠿ {self._stage}  {_duration(time.monotonic() - self._started)}"
                        f"{self._batch}", style="cyan")
        bar_width = 24
        filled = int(bar_width * min(s.accepted / max(s.target, 1), 1.0))
        return Text.assemble(
            ("━" * filled, "green"), ("━" * (bar_width - filled), "grey37"),
            f"  accepted {s.accepted}/{s.target}",
            (f" (→ {s.rows} most diverse)" if s.rows and s.rows != s.target else ""),
            f"  · requests {s.requests} ({s.cache_hits} cached)",
            f"  · {s.tokens_per_second:,.0f} tok/s",
            f"  · acceptance {s.acceptance_rate:.0%}",
            f"  · ETA {_duration(s.eta_seconds())}",
            (f"  · ${s.spent_usd:,.4f}" if s.spent_usd else ""),
            (self._batch, "grey50"),
            (_top_drops(s), "grey50"),
        )

    def _refresh(self) -> None:
        if not console.is_terminal:
            return
        if self._live is None:
            self._live = Live(self._render(), console=console, refresh_per_second=4,
                              transient=False, get_renderable=self._render)
            self._live.start()
        else:
            self._live.refresh()

    def stage(self, name: str) -> None:
        super().stage(name)
        self._stage = name
        if not console.is_terminal:
            console.print(f"· {name}")
        self._refresh()

    def answers(self, done: int, total: int) -> None:
        self._batch = f"  · batch {done}/{total}" if done < total else ""
        self._refresh()

    def update(self, stats: RunStats) -> None:
        super().update(stats)
        self._stats = stats
        self._batch = ""
        if not console.is_terminal:
            console.print(self._render())
        self._refresh()

    def note(self, message: str) -> None:
        super().note(message)
        console.print(f"[cyan]·[/] {message}")

    def warn(self, message: str) -> None:
        super().warn(message)
        console.print(f"[yellow]![/] {message}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def summary_table(manifest: dict) -> Table:
    table = Table(title="Run summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("accepted", f"{manifest['accepted']} / {manifest['num_records']}")
    table.add_row("requests", f"{manifest['generated']} ({manifest['cache']['hits']} from cache)")
    table.add_row("acceptance", f"{manifest['acceptance_rate']:.0%}")
    for reason, n in manifest["dropped"].items():
        table.add_row(f"  dropped: {reason}", str(n))
    tokens = manifest["tokens"]
    table.add_row("tokens", f"{tokens['prompt']:,} prompt · {tokens['completion']:,} completion")
    table.add_row("teacher", f"{manifest['teacher']['kind']}:{manifest['teacher']['model']}")
    engine = manifest.get("engine") or {}
    if engine.get("kind") == "ray":
        lost = engine.get("worker_restarts")
        table.add_row("engine", f"ray · {engine['address']} · {engine['actors']} actors on "
                                f"{', '.join(engine['nodes']) or '?'}"
                                + (f" · {lost} lost and restarted" if lost else ""))
    spend = manifest.get("spend") or {}
    if spend.get("usd"):
        table.add_row("spent", f"${spend['usd']:,.4f} this run · "
                               f"${spend['total_usd']:,.4f} in all")
    retries = (manifest.get("teacher_stats") or {}).get("retries")
    if retries:
        table.add_row("retries", ", ".join(f"{k} {v}" for k, v in retries.items()))
    timings = manifest["timings"].items()
    table.add_row("time", " · ".join(f"{k} {_duration(v)}" for k, v in timings))
    return table
