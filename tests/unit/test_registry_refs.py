"""Model references, aliases and tracking URIs are checked before anything talks to MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.registry import ModelRef, RegistryError, check_alias, display_uri, embedded_uri
from stratus.registry.refs import check_tracking_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/fraud@champion", ModelRef("fraud", alias="champion")),
        ("models:/fraud/3", ModelRef("fraud", version=3)),
        ("models:/fraud", ModelRef("fraud")),
        ("fraud@challenger", ModelRef("fraud", alias="challenger")),
        ("fraud/12", ModelRef("fraud", version=12)),
    ],
)
def test_parse_model_references(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


def test_a_reference_prints_as_the_uri_mlflow_accepts() -> None:
    assert str(ModelRef("fraud", alias="champion")) == "models:/fraud@champion"
    assert str(ModelRef("fraud", version=3)) == "models:/fraud/3"
    assert ModelRef.parse(str(ModelRef("fraud", version=3))) == ModelRef("fraud", version=3)


def test_of_reads_digits_as_a_version_and_words_as_an_alias() -> None:
    assert ModelRef.of("fraud", "7") == ModelRef("fraud", version=7)
    assert ModelRef.of("fraud", 7) == ModelRef("fraud", version=7)
    assert ModelRef.of("fraud", "champion") == ModelRef("fraud", alias="champion")
    assert ModelRef.of("fraud", None) == ModelRef("fraud")


SAFE = (
    "is not a safe name; expected letters, digits, '.', '_' or '-', "
    "starting with a letter, digit or '_', and no '..'"
)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ModelRef.parse("models:/fraud/latest"),
            "'models:/fraud/latest': 'latest' is not a version number; expected models:/NAME/VERSION "
            "or models:/NAME@ALIAS",
        ),
        (
            lambda: ModelRef("a:b"),
            "not a model name: name 'a:b' " + SAFE,
        ),
        (
            lambda: ModelRef(""),
            "not a model name: name '' " + SAFE,
        ),
        (
            lambda: ModelRef("../x"),
            "not a model name: name '../x' " + SAFE,
        ),
        (
            lambda: ModelRef("m" * 64),
            f"not a model name: name '{'m' * 40}...' is 64 characters long; names have at most 63",
        ),
        (lambda: ModelRef("fraud", version=0), "model 'fraud': versions start at 1, got 0"),
        (
            lambda: ModelRef("fraud", version=1, alias="champion"),
            "model 'fraud': give a version or an alias, not both",
        ),
    ],
)
def test_bad_references_say_what_is_expected(make: object, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        make()  # type: ignore[operator]
    assert str(caught.value) == message


@pytest.mark.parametrize("alias", ["latest", "v3", "V12", "3", "two words", "-x", "champion!"])
def test_aliases_that_mlflow_reserves_or_that_read_as_versions_are_refused(alias: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_alias(alias)
    assert str(caught.value) == (
        f"{alias!r} is not a usable alias: use letters, digits, '_' and '-', starting with a letter, "
        "and not 'latest' or 'v<number>' (MLflow reserves those), e.g. champion"
    )


@pytest.mark.parametrize("alias", ["champion", "challenger", "prod-eu", "canary_2", "version2"])
def test_ordinary_aliases_pass(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:5000", "https://mlflow.example.com/", "sqlite:///x.db", "postgresql+psycopg://u@h/db"],
)
def test_server_and_database_uris_are_accepted(uri: str) -> None:
    assert check_tracking_uri(uri) == uri


@pytest.mark.parametrize("uri", ["localhost:5000", "./mlruns", "file:///tmp/mlruns", "ftp://host"])
def test_a_path_or_bare_host_is_not_a_tracking_uri(uri: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_tracking_uri(uri)
    assert str(caught.value) == (
        f"{uri!r} is not an MLflow tracking URI; expected http(s)://HOST:PORT for a server, "
        "or a database URL such as sqlite:///path/mlflow.db"
    )


def test_passwords_never_reach_the_screen() -> None:
    assert (
        display_uri("https://bot:s3cret@mlflow.example.com:8443/x")
        == "https://bot:***@mlflow.example.com:8443/x"
    )
    assert display_uri("postgresql://ml:pw@db/mlflow") == "postgresql://ml:***@db/mlflow"
    assert display_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_the_embedded_store_is_an_absolute_sqlite_file_in_the_state_folder(tmp_path: Path) -> None:
    assert embedded_uri(tmp_path / ".stratus") == f"sqlite:///{tmp_path.resolve()}/.stratus/mlflow.db"
