"""The perf stage's library: Locust in its own process, the report it yields, resources of the
load-tested slot, baselines, and the chart and table that show the comparison.

Nothing here imports Locust (or gevent): Locust runs as a subprocess, so its monkey-patching
never reaches the Prefect process.
"""
