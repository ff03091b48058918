"""Benchmarks: synthetic corpora and timed runs (`make bench`); not part of the test run."""
