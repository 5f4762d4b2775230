"""Partner app: a small third-party app built on ``openplatform_client`` (see README.md)."""

from .app import create_app
from .config import Config

__all__ = ["Config", "create_app"]
