"""Numbered SQL migrations, shipped as package data (see scheduler_daemon.db.migrate)."""
