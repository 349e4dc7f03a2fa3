# nacritan hub image. Build: docker build -t registry.example.invalid/nacritan/hub:TAG . (the name the k8s overlays use)
# The same venv recipe (docker/build-venv.sh) is exercised without Docker by .ci/deploy-checks.sh.
# Bookworm: the Debian release CI runs on, so CI's mariadb-dump is the one the image ships.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt docker/build-venv.sh ./
RUN sh build-venv.sh /opt/venv requirements.txt python \
    && /opt/venv/bin/python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
# tzdata: alert reminders read the game's dates in Europe/Paris time.
# Unpinned on purpose: Debian's stable security updates replace these versions, so a
# pinned version stops being installable; the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mariadb-client tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY hub/ ./hub/
COPY parsers/ ./parsers/
COPY storage/ ./storage/
# Bytecode is compiled here because the root filesystem is read-only at run time.
RUN /opt/venv/bin/python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NACRITAN_HOST=0.0.0.0 \
    NACRITAN_PORT=8080
USER 10001:10001
EXPOSE 8080
# Exec form: python is PID 1 and receives SIGTERM itself (graceful shutdown).
ENTRYPOINT ["python", "-m", "hub"]
CMD ["serve"]
