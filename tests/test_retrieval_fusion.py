"""Weighted reciprocal rank fusion (hybrid search's BM25 weight)."""

from __future__ import annotations

import pytest

from engine.fusion import RRF_K, reciprocal_rank_fusion


def test_even_weights_are_plain_rank_fusion() -> None:
    rankings = [["a", "b"], ["b", "c"]]
    assert reciprocal_rank_fusion(rankings) == reciprocal_rank_fusion(rankings, weights=[1, 1])
    assert reciprocal_rank_fusion(rankings)[0] == ("b", 1 / (RRF_K + 2) + 1 / (RRF_K + 1))


def test_a_heavier_list_wins_a_tie_between_the_lists_first_picks() -> None:
    dense, lexical = ["d", "x"], ["l", "y"]
    assert reciprocal_rank_fusion([dense, lexical])[0][0] == "d"  # a tie, broken by id
    assert reciprocal_rank_fusion([dense, lexical], weights=[1.0, 1.5])[0][0] == "l"


def test_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
