"""The WebSocket edge: the page, microphones in, captions out, with tokens guarding each session."""

from livetranslate.edge.app import create_app
from livetranslate.edge.server import EdgeStartError, check_port_free, serve, serving
from livetranslate.edge.settings import EdgeSettings

__all__ = [
    "EdgeSettings",
    "EdgeStartError",
    "check_port_free",
    "create_app",
    "serve",
    "serving",
]
