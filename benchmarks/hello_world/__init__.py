"""Django's own ceiling for the benchmark suite: one view behind five middlewares that reads
the session and looks the user up, on the same database, sessions and user table as the app.
Served by the same gunicorn command as the app (benchmarks/bench_suite.py)."""
