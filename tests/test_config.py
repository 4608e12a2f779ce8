from __future__ import annotations

from pathlib import Path

import pytest

from edgeevo.config import DATA_ROOT_ENV, Config, load_config, parse_config
from edgeevo.errors import ConfigError
from edgeevo.space import OPS

REPO = Path(__file__).resolve().parent.parent


def test_defaults_match_the_paper_sized_search():
    config = Config()
    assert (config.search.population, config.search.sample) == (100, 25)
    assert config.space.ops == list(OPS)
    assert config.objectives == {"accuracy": "max", "latency_ms": "min", "flops": "min"}
    assert (config.data.train, config.data.valid) == (45000, 5000)


def test_examples_parse():
    for path in sorted((REPO / "examples").glob("*.toml")):
        load_config(path)


def test_environment_overrides_data_root(monkeypatch):
    config = parse_config({"data": {"root": "/nowhere"}})
    monkeypatch.setenv(DATA_ROOT_ENV, "/elsewhere")
    assert config.data_root == Path("/elsewhere")
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert config.data_root == Path("/nowhere")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope.toml' does not exist"):
        load_config(tmp_path / "nope.toml")


def test_not_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[search\npopulation = 3\n")
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"serach": {}}, r"unknown section \[serach\]; known sections: search, space"),
        ({"search": {"popultion": 3}}, r"unknown key 'popultion' in \[search\]; known keys"),
        ({"search": {"population": "ten"}}, r"population = 'ten'; expected a whole number"),
        ({"search": {"population": 1}}, r"population = 1; expected at least 2"),
        ({"search": {"population": True}}, r"population = True; expected a whole number"),
        (
            {"search": {"strategy": "nsga"}},
            r"strategy = 'nsga'; expected one of: pareto, aging, random",
        ),
        ({"search": {"population": 4, "sample": 5}}, r"sample = 5 is larger than population"),
        ({"space": {"ops": ["sep_conv_9x9"]}}, r"unknown op 'sep_conv_9x9'; known ops: identity"),
        ({"space": {"ops": ["identity"]}}, r"\[space\] ops = \['identity'\]; expected at least 2"),
        ({"space": {"ops": ["identity", "identity"]}}, r"\[space\] ops lists 'identity' more"),
        ({"space": {"ops": "identity"}}, r"expected a list of strings"),
        ({"data": {"download": "yes"}}, r"download = 'yes'; expected true or false"),
        ({"data": {"valid": 6000}}, r"holds at most 45000 and 5000"),
        ({"network": {"classes": 100}}, r"classes = 100; CIFAR-10 has 10 classes"),
        ({"limits": {"latency_ms": "fast"}}, r"\[limits\] latency_ms = 'fast'; expected a number"),
        ({"train": {"learning_rate": 0}}, r"learning_rate = 0; expected more than 0"),
        ({"train": {"learning_rate": float("nan")}}, r"learning_rate = nan; expected a finite"),
        ({"train": {"grad_clip": 0}}, r"grad_clip = 0; expected more than 0"),
        ({"network": {"resolution": 100000}}, r"resolution = 100000; expected at most 1024"),
        ({"device": {"intra_op_threads": 10**8}}, r"intra_op_threads = 100000000; expected at"),
        ({"workers": {"count": "all"}}, r"count = 'all'; expected a whole number or 'auto'"),
        ({"workers": {"count": 2.5}}, r"count = 2.5; expected a whole number or 'auto'"),
        ({"workers": {"count": True}}, r"count = True; expected a whole number or 'auto'"),
        ({"workers": {"count": 0}}, r"\[workers\] count = 0; expected at least 1"),
        ({"workers": {"grace": -1}}, r"\[workers\] grace = -1; expected at least 0"),
        ({"workers": {"time_limit": "1h"}}, r"time_limit = '1h'; expected a number"),
        ({"state": {"path": ""}}, r"\[state\] path = ''; expected the path of a state file"),
        ({"limits": {"latency_ms": float("inf")}}, r"latency_ms = inf; expected a finite number"),
        ({"objectives": {"acc": "max"}}, r"x.toml: \[objectives\] 'acc' is not an objective"),
        ({"search": 3}, r"\[search\] must be a table"),
        (
            {"search": {"space": "nb201"}, "space": {"blocks": 3}},
            r"\[space\] blocks and ops shape NASNet cells; the nb201 space is fixed",
        ),
        (
            {"table": {"path": "t.csv"}},
            r"\[objectives\] flops cannot be looked up in \[table\]; a table gives accuracy",
        ),
        (
            {
                "table": {"path": "t.csv"},
                "objectives": {"accuracy": "max"},
                "limits": {"params": 9},
            },
            r"\[limits\] params cannot be checked with \[table\]; a table gives latency_ms only",
        ),
        (
            {"table": {"path": "t.csv", "latency": ""}, "objectives": {"accuracy": "max"}},
            r"\[table\] latency is empty; expected the name of a column",
        ),
        ({"table": {"accuracy_unit": "permille"}}, r"expected one of: percent, fraction"),
    ],
)
def test_errors_name_the_value_and_what_is_accepted(doc, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(doc, source="x.toml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("x.toml: ")


def test_workers_count_takes_a_number_or_auto():
    assert Config().workers.count == "auto"
    assert parse_config({"workers": {"count": 4}}).workers.count == 4
    assert parse_config({"workers": {"count": "auto"}}).workers.count == "auto"
    workers = parse_config({"workers": {"grace": 5, "time_limit": 90}}).workers
    assert (workers.grace, workers.time_limit) == (5.0, 90.0)
