"""Producing and following a creation's events: the event model (`events`), the Redis event
log (`history`), following it (`feed`), producing it (`runner`), the answer cache and
in-flight sharing (`cache`), the job queue for long tools (`queue`), and settling runs whose
producer died (`recovery`).

May import: `resolvers.core`, `resolvers.storage` and the tool registry (`resolvers.tools`).
Never `resolvers.access`: who may start or follow a creation is the use cases' business.
"""
