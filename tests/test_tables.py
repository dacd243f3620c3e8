"""Printed tables keep their columns aligned whatever the cells hold."""

from __future__ import annotations

from spinalnet.comparison.summary import format_table
from spinalnet.tables import align


def test_align_pads_every_column_to_its_widest_cell():
    lines = align([["name", "value"], ["a-very-long-name", "1"], ["b", "12.50"]])
    assert lines == ["name              value", "a-very-long-name      1", "b                 12.50"]


def test_compare_table_aligns_two_digit_std_and_big_numbers():
    head = {"val_acc": [90.0], "train_seconds": [1.0], "test_acc": [1.0, 2.0], "seeds": [0, 1],
            "head": {"shape": "320-50-10", "dropout": [0.5]}}
    arms = {"fc": {**head, "spec": "fc", "test_acc_mean": 91.23, "test_acc_std": 12.5, "params": 1_234_567,
                   "head_params": 12_345, "images_per_second": 12_345.6},
            "mlp": {**head, "spec": "mlp", "test_acc_mean": 9.2, "test_acc_std": 0.5, "params": 123, "head_params": 12,
                    "images_per_second": 1.0, "head": {"shape": "320-26-10", "dropout": [0.0]}},
            "spinal": {**head, "spec": "spinal", "test_acc_mean": 9.2, "test_acc_std": 0.5, "params": 123, "head_params": 12,
                       "images_per_second": 1.0, "head": {"shape": "spinal 320: 6 x 8 -> 10", "dropout": [0.0]}}}
    from spinalnet.comparison.results_file import ComparisonSummary

    lines = format_table(ComparisonSummary.from_dict({"arms": arms, "contrasts": [], "reference": "spinal",
                                                      "dataset": "d", "model": "m", "config": {"epochs": 1}})
                         ).splitlines()
    header, *rows = lines[1:4]
    assert len({len(line) for line in (header, *rows)}) == 1
    for column in ("test acc (%)", "+- std", "params"):  # right-aligned: cells end where the header ends
        end = header.index(column) + len(column)
        assert all(r[end - 1] != " " and r[end:end + 1] == " " for r in rows)
