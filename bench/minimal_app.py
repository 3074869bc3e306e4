"""Baseline for the start-up benchmark: a bare Typer app with tokviz's command names and nothing else."""

import typer

app = typer.Typer(add_completion=False)


@app.command()
def predict(prompt: str, model: str = "", top_k: int = 5) -> None:
    """Generate."""


@app.command()
def render(run_file: str, output: str = "") -> None:
    """Render."""


if __name__ == "__main__":
    app()
