# driftloop: the service, its command line and the MLflow client/server it depends on.
#   docker build -t driftloop:local .
#   docker run --rm -v $PWD/driftloop.yaml:/etc/driftloop/driftloop.yaml:ro driftloop:local
# The config must bind server.host 0.0.0.0 and port 8080 (the HEALTHCHECK asks
# http://127.0.0.1:8080/readyz), with a token in the variable named by
# server.auth_token_env: driftloop refuses unauthenticated mutating routes off loopback.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# a fixed non-root uid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned
RUN groupadd --system --gid 10001 driftloop \
 && useradd --system --uid 10001 --gid driftloop --home-dir /var/lib/driftloop \
      --create-home --shell /usr/sbin/nologin driftloop \
 && mkdir -p /etc/driftloop /var/lib/driftloop/example /var/lib/mlflow \
 && chown driftloop:driftloop /var/lib/driftloop/example /var/lib/mlflow

WORKDIR /opt/driftloop
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY triggers ./triggers
COPY monitor ./monitor
COPY dashboards ./dashboards
RUN pip install . && rm -rf /opt/driftloop/build

USER 10001:10001
WORKDIR /var/lib/driftloop
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]
CMD ["driftloop", "serve", "--config", "/etc/driftloop/driftloop.yaml"]
