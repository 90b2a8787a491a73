"""A per-record rule of docs/examples/orders.toml."""


def drop_test_orders(record):
    return None if record.get("customer_id", "").startswith("test-") else record
