"""What the fold says of a record that is valid JSON but no object."""


def test_a_record_that_is_no_object_is_refused_in_jsons_words():
    from rtstream.engine.decode import not_an_object

    assert [not_an_object(v) for v in (None, True, 5, 2.5, "x", [1])] == [
        f"expected a JSON object, got {k}" for k in ("null", "a boolean", "a number", "a number", "a string", "an array")]
