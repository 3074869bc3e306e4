"""tokviz: see the log-probabilities of every token a language model generates, and the roads not taken."""

__version__ = "0.1.0"


def predict(*args, **kwargs):  # type: ignore[no-untyped-def]
    """`tokviz.predict(prompt, model=None, ...) -> Run`; see `tokviz.notebook.predict`.

    Imported on first use so that `import tokviz` (and `tokviz --help`) stays light.
    """
    from tokviz.notebook import predict as _predict

    return _predict(*args, **kwargs)


def choices(*args, **kwargs):  # type: ignore[no-untyped-def]
    """`tokviz.choices(prompt, [answers], model=None, ...) -> Choices`; see `tokviz.notebook.choices`."""
    from tokviz.notebook import choices as _choices

    return _choices(*args, **kwargs)
