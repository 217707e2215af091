"""The store's own attribute serializer writes exactly what boto3's ``TypeSerializer`` would."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge.store.dynamodb import attribute_value

RECORD_VALUES = st.recursive(
    st.text() | st.integers(min_value=-(2**63), max_value=2**63) | st.booleans(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(RECORD_VALUES)
def test_every_record_value_is_written_as_boto3_would(value: Any) -> None:
    assert attribute_value(value) == TypeSerializer().serialize(value)


@pytest.mark.parametrize("value", [1.5, None, b"bytes", {1, 2}, (1, 2)], ids=repr)
def test_a_value_records_never_hold_is_refused_by_name(value: Any) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        attribute_value(value)
