"""Benchmarks: each ``bench/bench_*.py`` module has ``main()`` that prints a table; ``python -m bench`` runs all."""
