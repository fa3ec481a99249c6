"""How long rendering a Markdown answer takes on pathological input (not a test).

    .venv/bin/python benchmarks/markdown_render.py

python-markdown, which the board used first, was quadratic on a run of "[" (5,000 took ~6 s);
markdown-it-py should grow linearly. Each input gets a unique tail so the render cache misses.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from lifecycle.markdown import render_markdown  # noqa: E402

PATTERNS = ["[", "![", "[a](", "*", "_", "<", "`", "> ", "+ ", "1. "]


def main() -> None:
    print(f"{'pattern':>8} {'chars':>8} {'seconds':>9} {'µs/char':>8}")
    for pattern in PATTERNS:
        for size in (5_000, 50_000):
            text = (pattern * (size // len(pattern)))[:size] + str(time.time_ns())
            started = time.perf_counter()
            render_markdown(text)
            elapsed = time.perf_counter() - started
            print(f"{pattern!r:>8} {size:>8} {elapsed:>9.3f} {elapsed / size * 1e6:>8.2f}")


if __name__ == "__main__":
    main()
