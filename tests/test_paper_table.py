"""The published Table 1 beside a grid's numbers."""

from __future__ import annotations

from longtail.bench.paper import PAPER_TABLE1, paper_comparison_markdown


def _rec(method, seed, err, profile="exp", ratio=100.0, epochs=40):
    return {
        "method": method,
        "dataset": "fashion-mnist",
        "profile": profile,
        "ratio": ratio,
        "seed": seed,
        "epochs": epochs,
        "config": {"epochs": epochs},
        "metrics": {"top1_error": err},
    }


def test_paper_numbers_are_the_published_ones():
    assert PAPER_TABLE1["cifar10"][("exp", 100.0)]["erm"] == 29.64
    assert PAPER_TABLE1["cifar10"][("step", 10.0)]["mm-ldam-drw"] == 11.33
    assert PAPER_TABLE1["cifar100"][("exp", 100.0)]["mm-drw"] == 57.14
    assert PAPER_TABLE1["cifar100"][("step", 100.0)]["cb-focal"] == 80.24


def test_side_by_side_with_seed_counts():
    recs = [_rec("erm", 0, 14.0), _rec("erm", 1, 15.0), _rec("mm-drw", 0, 12.0)]
    text = paper_comparison_markdown(recs)
    lines = text.splitlines()
    assert "| LT-100 here | LT-100 paper |" in lines[2]
    assert "| ERM | 14.50 ± 0.71 (2) | 29.64 |" in text
    assert "| MM-DRW | 12.00 (1) | 21.98 |" in text
    assert "CIFAR-10" in lines[0] and "Fashion-MNIST" in lines[0]


def test_nothing_to_compare_and_mixed_recipes_give_nothing():
    assert paper_comparison_markdown([_rec("loss:vs", 0, 10.0)]) == ""
    assert paper_comparison_markdown([_rec("erm", 0, 14.0), _rec("erm", 1, 15.0, epochs=80)]) == ""
