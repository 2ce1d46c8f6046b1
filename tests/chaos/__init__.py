"""Helpers for the chaos suite (tests/test_chaos.py) and the fault tests."""
