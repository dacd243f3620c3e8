"""Printed tables keep their columns aligned whatever the cells hold."""

from __future__ import annotations

from spinalnet.comparison.compare import format_table
from spinalnet.tables import align


def test_align_pads_every_column_to_its_widest_cell():
    lines = align([["name", "value"], ["a-very-long-name", "1"], ["b", "12.50"]])
    assert lines == ["name              value", "a-very-long-name      1", "b                 12.50"]


def test_compare_table_aligns_two_digit_std_and_big_numbers():
    head = {"val_acc": [90.0], "train_seconds": [1.0], "test_acc": [1.0, 2.0]}
    summary = {"fc": {**head, "test_acc_mean": 91.23, "test_acc_std": 12.5, "params": 1_234_567,
                      "head_params": 12_345, "images_per_second": 12_345.6},
               "spinal": {**head, "test_acc_mean": 9.2, "test_acc_std": 0.5, "params": 123, "head_params": 12,
                          "images_per_second": 1.0}}
    header, fc, spinal = format_table(summary, "title").splitlines()[1:4]
    assert len(header) == len(fc) == len(spinal)
    for column in ("test acc (%)", "+- std", "params"):  # right-aligned: cells end where the header ends
        end = header.index(column) + len(column)
        assert fc[end - 1] != " " and spinal[end - 1] != " " and fc[end:end + 1] == spinal[end:end + 1] == " "
