# syntax=docker/dockerfile:1
# Build: install warroom into a virtual environment, exactly as the README's run command does.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY templates ./templates
RUN python3 -m venv /opt/warroom && /opt/warroom/bin/pip install .

# Run: the virtual environment only, as a non-root user, SQLite in a volume.
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 warroom \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin warroom \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /opt/warroom /opt/warroom
ENV PATH=/opt/warroom/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WARROOM_SERVER__HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////data/incidents.db
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["warroom", "serve"]
