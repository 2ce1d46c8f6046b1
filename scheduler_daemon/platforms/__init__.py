"""Platform adapters: one module per API, one Protocol (base.py), one registry."""
