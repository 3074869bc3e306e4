"""One small module per command; `tokviz.cli` registers them and owns the error funnel."""
