"""User-defined aggregators that the window tests name in config."""


class Spread:
    """max(amount) - min(amount), kept as (lo, hi)."""

    def zero(self):
        return None

    def add(self, acc, record):
        v = record["amount"]  # a record without it raises: dead-lettered, nothing half-updated
        return (v, v) if acc is None else (min(acc[0], v), max(acc[1], v))

    def merge(self, a, b):
        if a is None or b is None:
            return a or b
        return (min(a[0], b[0]), max(a[1], b[1]))

    def result(self, acc):
        return None if acc is None else acc[1] - acc[0]


class NotAnAggregator:
    pass
