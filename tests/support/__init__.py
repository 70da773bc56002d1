"""Builders and servers the tests share (tests/ is on pytest's pythonpath: `from support.feed import Feed`)."""
