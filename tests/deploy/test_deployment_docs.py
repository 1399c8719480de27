"""docs/deployment.md says only what is so: the commands it gives exist with the options it
uses, the variables it names are read by the code, and the objects it lists are deployed."""

from __future__ import annotations

import re
import shlex
from typing import Any

import typer.main
from audit_trail.cli import app as cli_app

from tests.deploy.conftest import PROJECT_ROOT, named
from tests.deploy.test_manifests import COMMON, READ_BY

DOCS = (PROJECT_ROOT / "docs" / "deployment.md").read_text()


def shell_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOCS, flags=re.DOTALL)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def audit_trail_invocations() -> list[list[str]]:
    invocations = []
    for line in [*shell_lines(), *re.findall(r"`(audit-trail [^`]+)`", DOCS)]:
        words = shlex.split(line, comments=True)
        # The command itself, or run in a pod (`kubectl exec ... -- audit-trail ...`); not the
        # namespace of the same name.
        for at, word in enumerate(words):
            if word == "audit-trail" and (at == 0 or words[at - 1] == "--"):
                invocations.append(words[at + 1 :])
    return invocations


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command the words name, and the words left for it."""
    command: Any = typer.main.get_command(cli_app)
    while words and words[0] in getattr(command, "commands", {}):
        command, words = command.commands[words[0]], words[1:]
    return command, words


def options_of(command: Any) -> set[str]:
    return {option for parameter in command.params for option in parameter.opts}


def test_every_command_given_exists_with_its_options() -> None:
    invocations = audit_trail_invocations()
    named_commands = {" ".join(words[:2]) for words in invocations}
    for expected in ("verifier key", "witnesses add", "privacy create-keys", "tenants create"):
        assert expected in named_commands
    for words in invocations:
        command, rest = resolve(words)
        assert not hasattr(command, "commands") or command.invoke_without_command, words
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in options_of(command), (words, word)


def test_every_variable_named_is_read_by_the_code() -> None:
    read = set().union(*READ_BY.values()) | COMMON
    named_variables = set(re.findall(r"\b(?:AUDIT_TRAIL|PROMETHEUS)_[A-Z_]+\b", DOCS))
    assert "AUDIT_TRAIL_VERIFIER_NAME" in named_variables
    assert named_variables <= read, sorted(named_variables - read)


def test_every_object_listed_is_deployed(manifests: list[dict[str, Any]]) -> None:
    table = DOCS.split("| Object | File | What it runs |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (.+?) \| `(.+?)` \|", table, flags=re.MULTILINE)
    assert len(rows) >= 9
    for objects, file in rows:
        kinds_and_name = re.fullmatch(r"(.+?) `(.+?)`", objects)
        if kinds_and_name is None:  # "NetworkPolicies", "InferenceService (example ...)"
            assert (PROJECT_ROOT / "deploy" / "kubernetes" / file).exists(), file
            continue
        kinds, name = kinds_and_name.groups()
        for kind in kinds.split(" + "):
            named(manifests, kind, name)
