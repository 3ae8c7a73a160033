"""Feedback itself: creating, updating, deleting and listing it, and the write rules of a flush."""
