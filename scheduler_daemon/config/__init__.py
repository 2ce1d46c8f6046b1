"""Settings: the only package that reads the environment (``env.Env``).

``Settings.from_env()`` builds one frozen value and validates it; a bad value raises
``ConfigError`` naming the variable, which the CLI prints before exiting with status 2.
"""

from .platforms import ClientCredentials, PlatformSettings
from .settings import Settings

__all__ = ["ClientCredentials", "PlatformSettings", "Settings"]
