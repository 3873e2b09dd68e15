# One image for the API, the worker and the migration; only the command differs:
#   creation-king serve --host 0.0.0.0 --port 8000 | creation-king worker | creation-king migrate
# Both stages use the same Python image, so the virtualenv built in the first one runs
# unchanged in the second.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# The dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
# The `otel` extra is included so that CK_TRACING=true needs no other image.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; open('/tmp/requirements.txt', 'w').write('\n'.join(p['dependencies'] + p['optional-dependencies']['otel']))" \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt
# Then the project itself: the packages of [tool.setuptools.packages.find] in pyproject.toml.
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY inference inference
COPY migrations migrations
RUN /opt/venv/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
# The root filesystem is read-only in k8s/ and docker-compose.yml: no bytecode files at run
# time (pip compiled them at install).
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes can verify runAsNonRoot (k8s/ runs it as 10001 too).
USER 10001:10001
WORKDIR /home/app
EXPOSE 8000
CMD ["creation-king", "serve", "--host", "0.0.0.0", "--port", "8000"]
