"""Alembic revision scripts (alembic ignores ``__init__.py`` here; it only makes setuptools ship them)."""
