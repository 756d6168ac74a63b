"""Fixtures of the console room."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def keep_logging_as_it_was():
    """``cli.main`` and the console reconfigure the ``wippy_agents`` logger; later tests must not see that."""
    logger = logging.getLogger("wippy_agents")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
    for handler in saved[0]:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
