"""Observability tests use the root `spans` fixture (tests/conftest.py)."""
