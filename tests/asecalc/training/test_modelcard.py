"""Model card: the table of test errors and a copy-pasteable regenerate command."""

from __future__ import annotations

import shlex

from asecalc.training import modelcard
from tests.asecalc.training._emt_data import write_emt_database


def test_card_has_errors_per_subset_and_a_quoted_regenerate_line(
    tmp_path, tiny_model_path
):
    test_db = write_emt_database(tmp_path / "test.db", 3, 2, key_value_pairs=True)
    notes = tmp_path / "notes.md"
    notes.write_text("**Status: test.**")
    output = tmp_path / "card.md"
    argv = [
        str(tiny_model_path),
        "--test",
        str(test_db),
        "--by",
        "molecule",
        "--title",
        "tiny (H, C, N, O; EMT)",
        "--notes",
        str(notes),
        "--output",
        str(output),
    ]
    modelcard.main(argv)
    text = output.read_text()
    assert text.startswith("# Model card: tiny (H, C, N, O; EMT)")
    assert "**Status: test.**" in text
    rows = [line for line in text.splitlines() if line.startswith("| test")]
    assert {row.split("|")[1].strip() for row in rows} == {
        "test",
        "test / H2O",
        "test / CH4",
        "test / H3N",
        "test / Cu",
    }
    command = next(line for line in text.splitlines() if line.startswith("Regenerate"))
    command = command.split("`")[1]
    # the title has spaces and parentheses: the line must split back into argv
    assert shlex.split(command)[3:] == argv
