"""What operators watch: the metric hooks, ``/healthz``, and the HTTP server for both."""
