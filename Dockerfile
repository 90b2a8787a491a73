# rtstream as a container: config at /etc/rtstream/, state in the /var/lib/rtstream volume.
# Build with `make image` (podman or docker); BASE may name a local image where no registry is reachable.
# Every extra is installed (PostgreSQL, YAML, S3, Parquet, uvloop): any config the README shows runs in it.
# The admin server listens on all interfaces here, so it needs its token, from a secret:
#   docker run --env-file admin.env ...      (admin.env: RTSTREAM_ADMIN_TOKEN=<openssl rand -hex 32>)
# Without RTSTREAM_ADMIN_TOKEN the daemon refuses to start (exit 2) rather than serve the admin API to
# anyone; probes (/healthz, /readyz) need no token and show their status only. See docs/SECURITY.md.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rtstream ./rtstream
RUN python3 -m venv /opt/rtstream \
 && /opt/rtstream/bin/pip install --no-cache-dir ".[postgres,yaml,s3,parquet,fast]"

FROM ${BASE}
RUN groupadd --system --gid 10001 rtstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rtstream --create-home rtstream
COPY --from=build /opt/rtstream /opt/rtstream
COPY config/rtstream.toml /etc/rtstream/rtstream.toml
ENV PATH=/opt/rtstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RTSTREAM_VAR=/var/lib/rtstream \
    RTSTREAM_ADMIN=0.0.0.0:8080
# not an ENV default: a token baked into the image would be in every copy of it
USER 10001:10001
WORKDIR /var/lib/rtstream
VOLUME ["/var/lib/rtstream"]
EXPOSE 8080
# rtstream handles SIGTERM itself as PID 1: stop sources, finish in-flight windows, commit, exit 0
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["rtstream", "run"]
CMD ["-c", "/etc/rtstream/rtstream.toml"]
