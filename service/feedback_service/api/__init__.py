"""The API layer: the RPC table, its servicers (transport-neutral), proto <-> domain conversion, and its two
transports, gRPC and Connect/gRPC-Web, over the shared steps of every call (calls.py)."""
