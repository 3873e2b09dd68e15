"""Benchmarks of Creation King that report ratios against baselines measured in the same run.

`python -m bench` measures, on this machine and in one run:

- streaming overhead: time to first token and per-token latency of the `write` subscription
  through the whole stack (uvicorn, Postgres, Redis, the local Triton) versus reading the same
  Triton stream directly (`bench.ttft`);
- concurrent streams: aggregate tokens/s of 64 `write` subscriptions in one API process
  versus 64 direct Triton streams (`bench.concurrency`);
- query throughput: an authenticated `{ me { id } }` on the full app versus a bare Strawberry
  `{ hello }` app, both on one uvicorn worker, driven by the same load generator
  (`bench.throughput`);
- fan-out and idle memory: one creation watched by 1,000 subscribers, and the RSS of idle
  subscriptions, versus a raw websocket broadcast (`bench.fanout`, `bench.broadcast_app`).

`bench.targets` checks the issue's targets against those figures. Nothing here is a pass/fail
test: absolute numbers depend on the machine, ratios less so.
"""
