"""tokviz for test suites: the pytest plugin (`plugin`), loaded through the `pytest11` entry point."""
