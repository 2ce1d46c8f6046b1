"""What goes over the wire, whoever builds the request: the rules every outbound request
follows, below httpx.

* ``guard.py``: which addresses and ports a connection may go to (``Guard``; the
  special-purpose ranges; ``SCHEDULER_ALLOW_NETWORKS``; the configured origins);
* ``transport.py``: httpx's transport seam on aiohttp's pool, enforcing the guard at every
  connection, a total deadline per request and a cap on the answer; ``outbound_client``
  builds the one client the adapters share;
* ``deadline.py``: the deadline of one publish attempt and whether it may have published.

It knows no platform and no database: ``platforms/`` sends through it, ``engine/`` bounds
attempts with it, ``daemon.py`` and the CLI build the client.
"""
