"""Feedback keys: the schema of what a key means and the cache the write path reads it from."""
