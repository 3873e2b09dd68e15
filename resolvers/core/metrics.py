"""Prometheus metrics of every process (API replicas and workers), one registry each.

Labels are bounded: tool names, backend names, outcome codes, GraphQL root fields and route
templates, never ids or client-chosen names. API processes serve them at `/metrics`; a
worker serves them on `CK_WORKER_METRICS_PORT` when it is set.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LONG = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800)

HTTP_SECONDS = Histogram(
    "ck_http_request_seconds",
    "HTTP request latency, by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY,
)
OPERATION_SECONDS = Histogram(
    "ck_graphql_operation_seconds",
    "GraphQL operation latency (subscriptions: until the stream starts), by type and root field.",
    ["type", "root", "outcome"],
    buckets=_LATENCY,
)
ACTIVE_SUBSCRIPTIONS = Gauge(
    "ck_active_subscriptions", "Subscriptions open on this process, by root field.", ["root"]
)
TIME_TO_FIRST_TOKEN = Histogram(
    "ck_time_to_first_token_seconds",
    "From the start of a run to its first streamed text, by tool and backend.",
    ["tool", "backend"],
    buckets=_LATENCY,
)
TOKENS = Counter(
    "ck_tokens_total", "Model tokens generated, by tool and backend.", ["tool", "backend"]
)
PROMPT_TOKENS = Counter(
    "ck_prompt_tokens_total",
    "Prompt tokens sent to models, by tool and backend.",
    ["tool", "backend"],
)
TOKENS_PER_SECOND = Histogram(
    "ck_tokens_per_second",
    "Generation speed of finished runs (completion tokens over run time), by tool.",
    ["tool"],
    buckets=(1, 5, 10, 25, 50, 100, 200, 400, 800),
)
RUNS = Counter(
    "ck_runs_total",
    "Runs ended, by tool, backend and outcome (status or error code).",
    ["tool", "backend", "outcome"],
)
MODEL_ERRORS = Counter(
    "ck_model_errors_total",
    "Runs a model backend failed (Triton, an OpenAI-compatible API...), by backend and code.",
    ["backend", "code"],
)
CACHE_HITS = Counter(
    "ck_cache_hits_total",
    "Creations answered by copying another (cached, or shared while it ran), by tool.",
    ["tool"],
)
QUEUE_DEPTH = Gauge("ck_queue_depth", "Jobs waiting or running on the arq queue.")
JOB_SECONDS = Histogram(
    "ck_job_seconds",
    "Worker job duration, by outcome (a status, skipped, interrupted).",
    ["outcome"],
    buckets=_LONG,
)
RATE_LIMITED = Counter(
    "ck_rate_limited_total",
    "Refusals by a limit: request rate, token quota or open subscriptions.",
    ["limit"],
)
WORKERS_ALIVE = Gauge(
    "ck_workers_alive",
    "arq workers whose heartbeat is fresh (a few seconds old at most), read from Redis at "
    "scrape time; 1 in embedded mode, where the API process runs jobs itself.",
)
