"""Benchmarks: ``python -m whispr.bench`` (``make bench``) runs every registered suite.

Each suite measures one part of the system and writes a JSON file of figures,
a Markdown summary and a plot under ``bench-results/``. Performance is
reported here, never asserted in tests: a shared 2-core machine makes timed
assertions flaky, while a report a person reads tells the truth.
"""
