"""tokviz: see the log-probabilities of every token a language model generates, and the roads not taken."""

__version__ = "0.1.0"
