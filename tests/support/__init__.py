"""Test support: a live HLS server, media helpers and pytest fixtures."""
