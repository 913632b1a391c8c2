"""Benchmarks of ns-letsencrypt (``python -m bench``); not part of the test run."""
