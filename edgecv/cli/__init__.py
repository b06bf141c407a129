"""The edgecv command line."""

from edgecv.cli.app import app, main

__all__ = ["app", "main"]
