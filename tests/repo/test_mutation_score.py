"""scripts.mutation_score, the table `make mutate` prints, read from mutmut's own meta files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from scripts import mutation_score


def _meta(root: Path, module: str, codes: Mapping[str, int | None]) -> None:
    path = root / (module + ".meta")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The keys mutmut 3.8 writes; the script reads only exit_code_by_key.
    path.write_text(
        json.dumps(
            {
                "exit_code_by_key": codes,
                "hash_by_function_name": {},
                "type_check_error_by_key": {},
                "durations_by_key": {},
                "estimated_durations_by_key": {},
            }
        ),
        encoding="utf-8",
    )


def test_killed_timeouts_survivors_and_untested_are_told_apart(tmp_path: Path) -> None:
    _meta(
        tmp_path,
        "shared/rules/naming.py",
        {
            "a__mutmut_1": 1,
            "a__mutmut_2": 36,
            "a__mutmut_3": 0,
            "a__mutmut_4": 33,
            "a__mutmut_5": None,
        },
    )
    (score,) = mutation_score.scores(tmp_path)
    assert score.module == "shared/rules/naming.py"
    assert (score.killed, score.survived, score.no_tests, score.other) == (2, 1, 1, 1)
    assert score.total == 5
    assert score.percent == pytest.approx(40.0)


def test_prints_one_row_per_module_and_fails_under_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _meta(tmp_path, "shared/rules/arm.py", {f"k{i}": 1 for i in range(9)} | {"s": 0})
    _meta(tmp_path, "shared/rules/debts.py", {"k": 1, "s": 0})
    status = mutation_score.main(["--mutants", str(tmp_path)])
    out, err = capsys.readouterr()
    assert "shared/rules/arm.py" in out and "9 / 10" in out and "90.0" in out
    assert "shared/rules/debts.py" in out and "1 / 2" in out and "50.0" in out
    assert out.splitlines()[-1].split()[:4] == ["all", "10", "/", "12"]
    assert status == 1
    assert "shared/rules/debts.py" in err and "arm.py" not in err


def test_every_module_at_target_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _meta(tmp_path, "shared/rules/arm.py", {f"k{i}": 1 for i in range(9)} | {"s": 0})
    assert mutation_score.main(["--mutants", str(tmp_path)]) == 0
    capsys.readouterr()


def test_no_results_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mutation_score.main(["--mutants", str(tmp_path / "absent")]) == 2
    assert "run `make mutate` first" in capsys.readouterr().err


def test_the_configured_modules_are_the_ones_scored() -> None:
    """[tool.mutmut] names the decision modules; a rename must not silently drop one."""
    import tomllib

    config = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    for module in config["only_mutate"]:
        assert Path(module).is_file(), module
    assert config["pytest_add_cli_args_test_selection"] == ["tests/rules"]
