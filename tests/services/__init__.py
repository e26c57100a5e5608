"""
Tests for L{sipstack.services}: location stores and digest authentication.
"""
