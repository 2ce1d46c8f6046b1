"""scheduler-daemon: publishes scheduled posts from PostgreSQL at their exact instant."""

__version__ = "0.1.0"
