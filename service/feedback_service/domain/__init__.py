"""Domain: feedback records, validation and the rules of each operation. No I/O of its own."""
