"""The link to a trainer: endpoints, backoff, overload coalescing and the Qt-driven client."""
