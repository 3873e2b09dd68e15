"""What every room stands on: settings, the database and its models, Redis keys, pub/sub
(`bus`) and the embedded Redis, errors, metrics, tracing, log fields, the CPU pool, data
loaders, and routing of tools to engines.

May import: `resolvers.core` and `inference` only.
"""
