"""Metadata lives in setup.cfg; this file lets old tools run ``setup.py``."""

from setuptools import setup

setup()
