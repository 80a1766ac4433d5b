"""Paging's widget-facing columns: the order of a cold 2D walk's references."""

from vmlab.paging.explore import reference_order


def test_reference_order_is_plain_columns_of_equal_length():
    cols = reference_order()
    assert set(cols) == {"row", "col", "order", "kind"} and len({len(v) for v in cols.values()}) == 1
    assert cols["order"] == list(range(1, 25)) and cols["kind"].count("guest") == 4
