# Two small images, non-root, from one file:
#   --target services (the default): every gRPC service; the command picks one:
#       python -m nhm_<registry|scoring|allocation|remediation> serve|migrate
#   --target dashboard: the web dashboard (python -m nhm_dashboard), without the services' code.
FROM python:3.11-slim AS build-services
WORKDIR /src
COPY constraints.txt ./
COPY sdk sdk
COPY services services
RUN python -m venv /opt/nhm \
 && /opt/nhm/bin/pip install --no-cache-dir -c constraints.txt \
      ./sdk ./services/platform ./services/registry ./services/scoring ./services/allocation ./services/remediation

FROM python:3.11-slim AS build-dashboard
WORKDIR /src
COPY constraints.txt ./
COPY sdk sdk
COPY services services
RUN python -m venv /opt/nhm \
 && /opt/nhm/bin/pip install --no-cache-dir -c constraints.txt ./sdk ./services/platform ./services/dashboard

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --create-home --home-dir /app nhm
ENV PATH=/opt/nhm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NHM_HOST=0.0.0.0 \
    NHM_LOG_FORMAT=json \
    NHM_DATA_DIR=/app/data
USER 10001
WORKDIR /app

FROM runtime AS dashboard
COPY --from=build-dashboard /opt/nhm /opt/nhm
# The dashboard answers GET /healthz; the probe reads it (no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "nhm_platform.probe", "http://127.0.0.1:8080/healthz"]
EXPOSE 8080
CMD ["python", "-m", "nhm_dashboard"]

FROM runtime AS services
COPY --from=build-services /opt/nhm /opt/nhm
# The gRPC health check, answered by the service on NHM_PORT (no probe binary to download).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "nhm_platform.probe"]
EXPOSE 50051 50052 50053 50054
CMD ["python", "-m", "nhm_registry", "serve"]
