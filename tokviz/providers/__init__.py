"""Providers: where tokens and their log-probabilities come from. See `registry` for the protocol."""
