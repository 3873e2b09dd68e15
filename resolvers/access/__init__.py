"""Who is calling and what they may do: sign-in and tokens (`auth`), who a credential names
(`identity`), refresh sessions, API keys, OIDC, scopes, the request and quota limits
(`limits`), the sign-in throttle, the audit log and the socket registry (`sockets`).

May import: `resolvers.core` (and `inference`). Never `resolvers.streaming`: the use cases
join the two.
"""
