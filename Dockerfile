# One image for the API and the worker (the command differs).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY inference inference
COPY migrations migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER app
WORKDIR /home/app
EXPOSE 8000
CMD ["creation-king", "serve", "--host", "0.0.0.0", "--port", "8000"]
