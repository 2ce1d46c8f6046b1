"""Helpers every test folder shares (``tests/`` is on the path: ``from support.helpers import ...``).

* ``helpers``: plain SQL the way a frontend writes it, and a LISTEN-driven ``Watcher``;
* ``pg``: dedicated PostgreSQL servers a test may restart, crash or put behind TLS;
* ``procs``: the daemon as a child process (SIGKILL, restarts);
* ``tcp_proxy``: a TCP proxy that can cut or stall a connection;
* ``chaos_platform``: the chaos suite's fake platform;
* ``platforms``: the contract suite's cases, fakes and publish context.
"""
