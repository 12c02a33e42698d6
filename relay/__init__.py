"""relay: live captions and interpretation for livestreamed meetings."""

__version__ = "0.1.0"
