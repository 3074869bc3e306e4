"""`tokviz batch`: many prompts, each written to its own files, resumable, never losing a result.

The package's face: `jobs` reads the input, `runner.Batch` runs it through a `flight.Flight` (the
jobs in flight, bounded), `feed` hands local jobs to the continuous scheduler, `state` is the SQLite
table that a resume trusts, `index` writes index.json and index.md, `engines` the request and
result files of offline batch engines (OpenAI's Batch API, vllm run-batch).
"""

from tokviz.batch.jobs import Job, Outcome, Tally, check_lines, iter_jobs, parse_jobs
from tokviz.batch.runner import Batch

__all__ = ["Batch", "Job", "Outcome", "Tally", "check_lines", "iter_jobs", "parse_jobs"]
