"""The HTTP face of the service: Connect and gRPC-Web for every RPC, CORS, health for load balancers,
static files, on uvicorn in the gRPC server's event loop."""
