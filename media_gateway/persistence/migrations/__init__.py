"""Alembic migration environment (a package only so that setuptools ships env.py and the versions)."""
