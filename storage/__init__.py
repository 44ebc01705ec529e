"""Persistence: SQLAlchemy tables, sessions, migrations and the image store (no torch here)."""
