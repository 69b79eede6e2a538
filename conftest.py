"""Shared fixtures: a real nats-server for every test that asks for one."""

pytest_plugins = ["livetranslate.streams.testing"]
