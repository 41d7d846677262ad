"""Printed paper numbers carry their own tolerance: half a unit of the last printed digit."""

from __future__ import annotations

import pytest

from archgen.printed import parse_printed, printed_tolerance, within


@pytest.mark.parametrize("text, value, half_unit", [
    ("25.0M", 25.0e6, 0.05e6),
    ("3.8G", 3.8e9, 0.05e9),
    ("0.27M", 0.27e6, 0.005e6),
    ("18.7G", 18.7e9, 0.05e9),
    ("19.4M", 19.4e6, 0.05e6),
    ("25M", 25e6, 0.5e6),
    ("25.0 x 10^6", 25.0e6, 0.05e6),
    ("4.1×10^9", 4.1e9, 0.05e9),
    ("18.7 Bn", 18.7e9, 0.05e9),
    ("25,557,032", 25_557_032, 0.5),
    ("850K", 850e3, 500),
])
def test_printed_numbers_parse_to_value_and_half_unit(text, value, half_unit):
    got_value, got_half = printed_tolerance(text)
    assert got_value == pytest.approx(value)
    assert got_half == pytest.approx(half_unit)


def test_resnet110_cifar_1_7M_admits_1_73M_but_not_1_76M():
    assert within("1.7M", 1_727_962)
    assert not within("1.7M", 1_760_000)


def test_bounds_are_inclusive_at_exactly_half_a_unit():
    assert within("1.7M", 1_750_000)
    assert within("1.7M", 1_650_000)
    assert not within("1.7M", 1_649_999)


def test_resnet50_25_6M_in_wrn_table8_matches_torchvision_count():
    assert within("25.6M", 25_557_032)
    assert not within("25.5M", 25_557_032)


@pytest.mark.parametrize("text", ["", "M", "about 25M", "25.0 Q", "1e6"])
def test_unreadable_printings_are_refused_with_the_text(text):
    with pytest.raises(ValueError, match="printed number|unknown unit"):
        parse_printed(text)
