"""The performance benchmark of issue 6: ``python -m bench.run [--smoke]``.

See bench/README.md for what each scenario measures and how.
"""
