# A Whispr node: `docker build -t whispr:latest .` then
# `docker run -p 4000:4000 -p 4080:4080 -p 50051:50051 -e WHISPR_JWT_SECRET=... whispr:latest`
# (embedded SQLite store, in-process broker), or set WHISPR_DATABASE_URL and
# WHISPR_REDIS_URL for a cluster (see k8s/ and docs/operations.md).
#
# The image listens on 0.0.0.0, so a node started from it without WHISPR_JWT_SECRET
# (or WHISPR_JWT_PUBLIC_KEY / WHISPR_JWT_JWKS_URL) refuses to start rather than accept
# tokens signed with the public development secret; WHISPR_ALLOW_DEV_SECRET=1 overrides
# that, for a throwaway demo only.

# --- build: install the package and its locked dependencies into /opt/venv --
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
WORKDIR /src
# uv, pinned with hashes, installs exactly what uv.lock names (--frozen: never
# re-resolves), and only the runtime: no dev or bench extra. Dependencies are
# wheels on PyPI (asyncpg, grpcio, uvloop, msgspec...), so no compiler is needed.
COPY scripts/uv-requirements.txt ./scripts/
RUN pip install --require-hashes -r scripts/uv-requirements.txt
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY supervisors ./supervisors
COPY actors ./actors
COPY whispr ./whispr
RUN uv sync --frozen --no-editable

# --- runtime: the virtualenv, a non-root user, nothing else ------------------
FROM python:3.11-slim
# In a container the node must listen on all interfaces, not loopback (and so needs a
# real JWT secret: see above).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WHISPR_HOST=0.0.0.0 \
    WHISPR_LOG_FORMAT=json \
    WHISPR_SQLITE_PATH=/var/lib/whispr/whispr.db
RUN useradd --system --uid 10001 --home-dir /var/lib/whispr --shell /usr/sbin/nologin whispr \
    && mkdir -p /var/lib/whispr \
    && chown whispr:whispr /var/lib/whispr
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/whispr
EXPOSE 4000 4080 50051
# Exec form: the node is PID 1 and receives SIGTERM itself, to drain (see
# docs/operations.md, "Stopping a node").
ENTRYPOINT ["whispr"]
CMD ["serve"]
