"""Benchmarks of weightcache against what people use today, side by side in one run: ``python -m bench``.

Not a test suite: nothing here asserts a timing. Each case in :mod:`bench.cases` measures, the
report states the machine, conditions, floors and goals, and ``docs/benchmarks.md`` is the result.
"""
