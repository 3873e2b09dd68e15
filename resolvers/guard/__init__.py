"""Guards that run on user text before any model sees it (`pii`: personal data masked)."""
