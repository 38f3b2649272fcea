"""The package version, alone: `app.py` and the build read it without importing the package."""

__version__ = "0.1.0"
