"""
Benchmarks for sipstack, run by hand (C{python benchmarks/parse.py}), not by trial.

They live outside the package so that the installed library carries no timing
code, and each one compares sipstack with the Twisted code it replaces, so a
number is always read against a baseline measured on the same machine.
"""
