"""The WebSocket edge: the page, microphones in, captions out, with tokens guarding each session."""

from livetranslate.edge.app import create_app
from livetranslate.edge.server import EdgeStartError, serve, serving
from livetranslate.edge.settings import EdgeSettings

__all__ = ["EdgeSettings", "EdgeStartError", "create_app", "serve", "serving"]
