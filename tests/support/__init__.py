"""Helpers shared by the tests, imported as ``tests.support.NAME`` (pytest puts the repository
root on sys.path: ``pythonpath`` in pyproject.toml; subprocesses get it from ``paths``).

``paths`` (where things are, the workers' PYTHONPATH), ``tinytask`` (a tiny real training task),
``recorded`` (small recorded runs), ``linreg`` (the linear-regression exactness fixture),
``factories`` (lineages and score tables without checkpoints).
"""
