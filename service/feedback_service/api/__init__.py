"""gRPC API: translates feedback.v1 messages to and from the domain, nothing else."""
