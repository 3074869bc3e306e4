"""`tokviz batch`: many prompts, each written to its own files, resumable, never losing a result."""
