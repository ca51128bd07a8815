# syntax=docker/dockerfile:1
# runs-controller: a two-stage build. The first stage builds the wheel; the final image
# installs only the wheel and its dependencies, runs as a non-root user and writes nothing
# outside /tmp, so it runs with readOnlyRootFilesystem (mount an emptyDir at /tmp).
# There is no container engine on the development machines: CI lints this file (hadolint)
# and checks that the wheel installs and starts (.ci/run).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN pip install --no-cache-dir "uv==0.13.8"
COPY pyproject.toml uv.lock README.md ./
COPY runs_controller ./runs_controller
RUN uv build --wheel --out-dir /dist

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="runs-controller" \
      org.opencontainers.image.description="Kubernetes controller for the runs.bubustack.io API group" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/bubustack/runs-controller"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
COPY --from=build /dist/*.whl /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 65532 runs \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --shell /usr/sbin/nologin runs
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["runs-controller", "run"]
