# One small image for every nhm service; the command picks one:
#   python -m nhm_<registry|scoring|allocation|remediation> serve|migrate
FROM python:3.11-slim AS build
WORKDIR /src
COPY constraints.txt ./
COPY sdk sdk
COPY services services
RUN python -m venv /opt/nhm \
 && /opt/nhm/bin/pip install --no-cache-dir -c constraints.txt \
      ./sdk ./services/platform ./services/registry ./services/scoring ./services/allocation ./services/remediation

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /app nhm
COPY --from=build /opt/nhm /opt/nhm
ENV PATH=/opt/nhm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NHM_HOST=0.0.0.0 \
    NHM_LOG_FORMAT=json \
    NHM_DATA_DIR=/app/data
USER 10001
WORKDIR /app
# The gRPC health check, answered by the service on NHM_PORT (no probe binary to download).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "nhm_platform.probe"]
EXPOSE 50051 50052 50053 50054
CMD ["python", "-m", "nhm_registry", "serve"]
