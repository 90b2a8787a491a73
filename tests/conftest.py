from __future__ import annotations

import pytest

from rtstream.testing.tansu import TansuBroker


@pytest.fixture(scope="session")
def kafka():
    """A real Kafka-protocol broker (Tansu) on a free loopback port for the whole session."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def fresh_kafka():
    """A broker of its own, for tests that stop or restart it."""
    with TansuBroker() as broker:
        yield broker
