"""The WebSocket edge: browsers watch any session's results live, and the page they use."""

from livetranslate.edge.app import create_app
from livetranslate.edge.server import EdgeStartError, serve

__all__ = ["EdgeStartError", "create_app", "serve"]
