"""Benchmarks and evaluations, run as scripts (``python bench/evaluate.py ...``); a package so that they and
the tests import one another the same way (``from bench import evaluate``)."""
