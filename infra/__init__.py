"""The platform's shared infrastructure: what both apps and the project's configuration use
(threads for blocking calls, API errors, logs, metrics, limits, lockout, middleware)."""
