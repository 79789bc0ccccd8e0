"""Shared test configuration: puts tests/ on sys.path so tests can import `strategies`."""
