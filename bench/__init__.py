"""Benchmarks: each ``bench/bench_*.py`` module has ``main()`` that prints a table; ``python -m bench`` runs all.

A module also reports each figure it prints through :func:`figure` (a dotted name, e.g.
``crawl.http_vs_bare``, and a number); ``python -m bench --json FILE`` writes every figure
reported in the run as one flat JSON object. A module that reports none is simply not listed.
"""

from __future__ import annotations

import math

FIGURES: dict[str, float | int | None] = {}


def figure(name: str, value: float | int | None, digits: int = 4) -> float | int | None:
    """Record the figure ``name`` (``area.what``) of this run and return ``value`` (so a table can
    print what it records). Floats are rounded to ``digits`` significant digits; NaN/inf become
    None (JSON has neither). Reporting a name twice keeps the last value."""
    if "." not in name or not name.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"figure name {name!r}: want 'area.what' (letters, digits, '_', '.')")
    if isinstance(value, bool) or value is None:
        stored = None if value is None else int(value)
    elif isinstance(value, int):
        stored = value
    else:
        v = float(value)
        stored = None if not math.isfinite(v) else float(f"{v:.{digits}g}")
    FIGURES[name] = stored
    return value


def peak_rss_mb() -> float:
    """This process's own peak resident set size (``VmHWM``). Not ``ru_maxrss``: a child started by
    (v)fork + exec keeps the forking parent's high-water mark in it, so a child of a big bench run
    would report the parent's size."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
