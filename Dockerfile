# The feedback service image (the Helm chart in helm/feedback-service runs it):
#   docker build -t feedback-service:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8080:8080 -e FEEDBACK_CLICKHOUSE_URL=http://user:pass@clickhouse:8123 feedback-service:0.1.0
# Without FEEDBACK_CLICKHOUSE_URL it serves the embedded engine from /var/lib/feedback (mount a volume).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build: the client distribution and the service, with their dependencies, into one virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/feedback
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clients/python ./clients/python
COPY service ./service
# Optional dependency groups of feedback-service: tracing = OpenTelemetry (FEEDBACK_TRACING).
ARG EXTRAS=tracing
RUN /opt/feedback/bin/pip install ./clients/python ".[${EXTRAS}]" \
    && /opt/feedback/bin/feedback --version

# Run: the virtualenv on a clean base, as an unprivileged user; the root filesystem may be read-only
# (HOME and temporary files go to /tmp, which the chart mounts as an emptyDir).
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/feedback/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    FEEDBACK_LISTEN=0.0.0.0:50051 \
    FEEDBACK_HTTP_LISTEN=0.0.0.0:8080 \
    FEEDBACK_DATA_DIR=/var/lib/feedback
RUN groupadd --system --gid 10001 feedback \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin feedback \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/feedback
COPY --from=build /opt/feedback /opt/feedback
USER 10001:10001
WORKDIR /var/lib/feedback
# gRPC, HTTP (Connect, gRPC-Web, /healthz, /readyz), Prometheus metrics (with FEEDBACK_METRICS_LISTEN=0.0.0.0:9464)
EXPOSE 50051 8080 9464
ENTRYPOINT ["feedback"]
CMD ["serve"]
