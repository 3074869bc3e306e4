"""Views turn a `Run` into something to look at. They return strings, renderables or bytes and never print."""
