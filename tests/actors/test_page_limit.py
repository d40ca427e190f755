"""The one page-size rule: what a request for ``limit`` items is served."""

from __future__ import annotations

import pytest

from actors import rules
from actors.errors import Reason, WhisprError


def test_a_page_is_at_least_one_and_at_most_max_page() -> None:
    assert rules.page_limit(1) == 1
    assert rules.page_limit(50) == 50
    assert rules.page_limit(rules.MAX_PAGE) == rules.MAX_PAGE
    assert rules.page_limit(10_000) == rules.MAX_PAGE == 200


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "10", None])
def test_other_limits_are_invalid(limit: object) -> None:
    with pytest.raises(WhisprError) as caught:
        rules.page_limit(limit)
    assert caught.value.reason is Reason.INVALID
    assert caught.value.details == {"field": "limit"}
