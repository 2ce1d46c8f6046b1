"""Local fakes of each platform's API at the httpx transport: ``base`` holds what they share
(``Fake``, ``Published``, request readers, ``reply``), and each platform has its own module,
owned with its adapter. Import a fake from its module (``support.platforms.fakes.x``)."""
