"""Files: the S3-compatible object store or its local stand-in (`objects`), and the outputs
of creations kept in it (`outputs`). Uploads, which check their caller, are a use case
(`resolvers.upload`).

May import: `resolvers.core` only.
"""
