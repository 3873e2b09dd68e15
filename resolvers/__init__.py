"""The application layer, GraphQL-free: what a request does, by concern.

- the use cases, here at the top: `creation` (start, follow, list, cancel a creation),
  `lexicon`, `preset`, `upload`; and `resources`, which wires one process's object graph
  (the composition helper the roots in `schema/` and `jobs/` call);
- `core/`: settings, the database and its models, Redis keys and pub/sub, errors, metrics,
  tracing, routing to engines; every room may use it;
- `access/`: who is calling and what they may do: sign-in, sessions, API keys, OIDC,
  scopes, rate and quota limits, the audit log, the socket registry;
- `streaming/`: producing and following a creation's events: the event log, the runner,
  the answer cache, the job queue, recovery of stalled runs;
- `storage/`: the object store and the outputs kept in it;
- `tools/`: the tool registry, one module per creation tool;
- `guard/`: checks on user text before any model sees it.

The rooms' import rules (enforced by `tests/test_architecture.py`): core imports no other
room; access, storage and guard import core only; streaming never imports access, and access
never imports streaming: the use cases join them; tools never import streaming.
"""
