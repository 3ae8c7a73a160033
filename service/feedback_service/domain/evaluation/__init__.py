"""What evaluation jobs read: aggregates, their statistics, exports and version comparisons."""
