r"""Benchmark: the dossier PDF of the demo's fullest project. How long the worker takes to render
it, and how long the web request that asks for it takes; not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/dossier_pdf.py [--runs 7] [--old] [--keep]

PostgreSQL only. The database ``<name>_dossier`` (the DATABASE_URL's name must contain "bench")
is dropped, created, migrated and seeded with the demo course (reviews.demo.seed_demo), and
dropped again at the end unless ``--keep``. The fullest project is the one with most revisions.

- render: what the Celery task does for one render (reviews.dossier_pdf): build the dossier,
  render the print template, lay it out with WeasyPrint and its own small stylesheet; split
  into "html" (queries, diffs, Markdown, template) and "pdf" (WeasyPrint). Median of --runs.
- ask: the web request that asks for a PDF of content not rendered yet (a DossierRender row is
  created and the task queued on commit, here to kombu's in-memory broker, which nobody
  consumes); poll: the same request while that render is preparing (what the page's polling
  costs). Both through django.test.Client, signed in as a team member.
- hello: a hello-world view behind the same middleware that reads request.user (session and user
  lookup), as the ceiling; RATIO lines are hello's median over the request's (throughput ratio).
- --old: also render once the way the board did before (the Bootstrap page through WeasyPrint).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

TARGET_RENDER_S = 1.5
TARGET_REQUEST_MS = 100.0


def hello(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(f"Hello, {request.user.pk}")


def _urlpatterns() -> list[Any]:
    from django.urls import path

    from config.urls import urlpatterns as site

    return [path("bench-hello/", hello), *site]


def median_ms(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:8.1f} ms  min {min(samples) * 1000:8.1f}  "
        f"max {max(samples) * 1000:8.1f}  (n={len(samples)})"
    )


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def measure(runs: int, old: bool) -> None:
    from django.db.models import Count
    from django.template.loader import render_to_string
    from django.test import Client
    from django.urls import reverse

    from config.celery_app import app
    from lifecycle.models import Project
    from reviews import dossier_pdf
    from reviews.demo import seed_demo
    from reviews.dossier import project_dossier
    from reviews.models import DossierRender

    _, seconds = timed(seed_demo)[::-1]
    project = (
        Project.objects.annotate(n=Count("stages__revisions"))
        .order_by("-n", "pk")
        .select_related("course", "template", "current_stage__definition")
    ).first()
    assert project is not None
    reader = project.members.order_by("pk").first()
    html = dossier_pdf.print_html(project=project, viewer=reader)
    print(
        f"demo seeded in {seconds:.1f} s; fullest project {project.title!r}: {project.n} "
        f"revisions, cycle {project.cycle}; print HTML {len(html) / 1024:.0f} KB"
    )

    # --- the worker's render ---
    dossier_pdf.render_pdf(html)  # warm up (fonts, stylesheet parsing)
    html_s, pdf_s, total_s, size = [], [], [], 0
    for _ in range(runs):
        t_html, html = timed(lambda: dossier_pdf.print_html(project=project, viewer=reader))
        t_pdf, pdf = timed(lambda html=html: dossier_pdf.render_pdf(html))
        html_s.append(t_html)
        pdf_s.append(t_pdf)
        total_s.append(t_html + t_pdf)
        size = len(pdf)
    print(f"render html   {median_ms(html_s)}")
    print(f"render pdf    {median_ms(pdf_s)}  ({size / 1024:.0f} KB PDF)")
    print(f"render total  {median_ms(total_s)}  target <= {TARGET_RENDER_S:.1f} s")
    if old:
        page = render_to_string(
            "reviews/dossier.html",
            {"dossier": project_dossier(project=project, viewer=reader), "user": reader},
        )
        t_old, _ = timed(lambda: dossier_pdf.render_pdf(page))
        print(f"render, the Bootstrap page as before: {t_old * 1000:.0f} ms (1 run)")

    # --- the web side: eager off, a broker nobody consumes ---
    app.conf.update(broker_url="memory://", task_always_eager=False)
    app._pool = None
    client = Client()
    client.force_login(reader)
    url = reverse("reviews:project_dossier_pdf", args=[project.pk])
    client.get("/bench-hello/")
    hello_s = [timed(lambda: client.get("/bench-hello/"))[0] for _ in range(runs * 5)]
    ask_s, poll_s = [], []
    for _ in range(runs):
        DossierRender.objects.filter(project=project).delete()
        t_ask, response = timed(lambda: client.get(url))
        assert b"Preparing your PDF" in response.content, response.content[:500]
        ask_s.append(t_ask)
        for _ in range(4):
            t_poll, response = timed(lambda: client.get(url))
            assert b"Already preparing" in response.content
            poll_s.append(t_poll)
    DossierRender.objects.filter(project=project).delete()
    print(f"hello         {median_ms(hello_s)}")
    print(f"request ask   {median_ms(ask_s)}  target < {TARGET_REQUEST_MS:.0f} ms")
    print(f"request poll  {median_ms(poll_s)}")
    hello_median = statistics.median(hello_s)
    print(f"RATIO dossier_pdf_render_s {statistics.median(total_s):.3f}")
    print(f"RATIO dossier_pdf_ask_vs_hello {hello_median / statistics.median(ask_s):.3f}")
    print(f"RATIO dossier_pdf_poll_vs_hello {hello_median / statistics.median(poll_s):.3f}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--old", action="store_true", help="also render the Bootstrap page once")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    print("$ " + " ".join(["DATABASE_URL=" + os.environ.get("DATABASE_URL", ""), *sys.argv]))
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_dossier"
    benchdb.create_database(parsed, name)
    os.environ["DATABASE_URL"] = benchdb.database_url(parsed, name)
    os.environ.setdefault("LRB_TEST_MEDIA_ROOT", f"/tmp/lrb-bench-media-{os.getuid()}")
    benchdb.setup_django()
    import logging

    for noisy in ("weasyprint", "fontTools"):  # progress and CSS warnings, per render
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.ROOT_URLCONF = __name__
    try:
        call_command("migrate", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        print(
            f"PostgreSQL {version}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
            f"database {name}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        measure(args.runs, args.old)
    finally:
        connection.close()
        if not args.keep:
            benchdb.drop_database(parsed, name)


def __getattr__(name: str) -> Any:
    # ROOT_URLCONF points here; the patterns are built once Django is set up.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
