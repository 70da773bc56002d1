"""Entrypoints and wiring: the command line, the service loop, the relay, the HTTP server."""
