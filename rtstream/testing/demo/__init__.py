"""`make demo`: the test broker, PostgreSQL and an S3 server started here (no Docker), a producer, a
pipeline (Kafka -> aggregate -> PostgreSQL and S3) and a DAG reading its table each minute, in one
daemon with the status page open. See rtstream.testing.demo.run."""
