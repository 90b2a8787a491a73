from __future__ import annotations

import pytest

from rtstream.testing.peers.postgres import PostgresCluster
from rtstream.testing.peers.tansu import TansuBroker
from tests.data import make_events


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


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster (Debian's server) for the whole session; yields its DSN."""
    with PostgresCluster() as cluster:
        yield cluster.dsn


@pytest.fixture
def events():
    """Six thousand clickstream events over thirty minutes of event time."""
    return make_events(6000, span_s=1800)


@pytest.fixture(scope="session")
def s3():
    """An S3-compatible server (moto) on a free loopback port for the whole session; tests make
    buckets of their own."""
    from rtstream.testing.peers.moto import MotoServer

    with MotoServer() as server:
        yield server
