# syntax=docker/dockerfile:1
# Seamline for production: the web app (default command) and, with another command, the
# worker and `seamline deploy` — see compose.yaml and docs/operations.md.
#
#   docker build -t seamline .
#   docker run --rm -e SEAMLINE_DB=postgresql+psycopg://… -e SEAMLINE_SECRET_KEY=… \
#              -v "$PWD/app:/app:ro" -p 8000:8000 seamline
#
# The app folder (app.yaml, forms/, flows/, …) is not part of the image: mount it at /app
# (`seamline init app --pack manufacturing` makes one from the shipped pack).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build>=1.2"
# the whole context (less .dockerignore): engine/assets links to configs/, templates/ and
# examples/, which the wheel carries
COPY . .
RUN python -m build --wheel --outdir /dist

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
# fonts-wqy-microhei: the CJK font the sealed approval PDFs are drawn with
#   (engine/flows/approvals/pdf.py looks for /usr/share/fonts/truetype/wqy/wqy-microhei.ttc;
#   SEAMLINE_PDF_FONT names another). A PDF is sealed as stored bytes; re-rendering one gives
#   the same bytes only with the same font file and fpdf2 (both pinned by this image).
# tzdata: the app's time zone (Asia/Shanghai for the pack) for zoneinfo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei tzdata \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/seamline/bin:$PATH

COPY --from=builder /dist/ /tmp/dist/
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/seamline \
    && wheel="$(ls /tmp/dist/seamline-*.whl)" \
    && /opt/seamline/bin/pip install -c /tmp/requirements.lock "${wheel}[postgres,pdf]" \
    && rm -rf /tmp/dist /tmp/requirements.lock \
    && seamline --version

RUN groupadd --system --gid 10001 seamline \
    && useradd --system --uid 10001 --gid seamline --home-dir /home/seamline --create-home \
       --shell /usr/sbin/nologin seamline \
    && mkdir -p /app && chown seamline:seamline /app
USER seamline
WORKDIR /app

EXPOSE 8000
# liveness only (the process answers); readiness with the database is /api/ready
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
# the web app alone: flow steps, the outbox and timers run in `seamline worker` containers
CMD ["seamline", "--app", "/app", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
