"""Whispr: the real-time messaging core of a chat application."""

__version__ = "0.1.0"
