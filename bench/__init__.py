"""Benchmarks of Creation King that report ratios against baselines measured in the same run.

`python -m bench` measures, on this machine and in one run:

- streaming overhead: time to first token and per-token latency of the `write` subscription
  through the whole stack (uvicorn, Postgres, Redis, the local Triton) versus reading the same
  Triton stream directly (`bench.ttft`);
- query throughput: an authenticated `{ me { id } }` on the full app versus a bare Strawberry
  `{ hello }` app, both on one uvicorn worker, driven by the same load generator
  (`bench.throughput`).

Nothing here is a pass/fail test: absolute numbers depend on the machine, ratios less so.
"""
