"""An override written with a space for its `=`, or split by the shell at one.

Hydra names such an override with its grammar's words alone (a bare
LexerNoViableAltException, or "Error parsing override 'num_rounds'"); these
are refused first, with the override as it should be written.
"""

from __future__ import annotations

from fedmodel.errors import FedmodelError


def refuse_spaced_overrides(overrides: list[str]) -> None:
    """Refuse an override with a space for its `=`, guessing how to write it.

    `num_rounds 3` gave Hydra's "Error parsing override 'num_rounds'" alone,
    and `'num_rounds = 3'` its bare LexerNoViableAltException.
    """
    for at, text in enumerate(overrides):
        if text.startswith("~"):
            continue
        key, equals, _ = text.partition("=")
        if equals and key == key.rstrip():
            continue
        if equals or " " in text.strip():  # one quoted word: `'num_rounds = 3'`
            fix = _without_spaces(text)
        elif whole := _split_list(overrides, at):
            raise FedmodelError(
                f"cannot parse the override '{text}': the shell split the list "
                f"of '{overrides[at - 1]}' at a space; quote the whole override: "
                f"'{whole}'"
            )
        else:
            fix = _rejoined(overrides, at)
        raise FedmodelError(
            f"cannot parse the override '{text}': an override is written "
            f"KEY=VALUE, with no space around the =; write {fix}"
        )


def _without_spaces(text: str) -> str:
    """One word's override with the spaces at its key's end taken for its `=`."""
    key, equals, value = text.partition("=")
    if not equals:
        key, _, value = text.strip().partition(" ")
    return f"{key.strip()}={value.strip()}"


def _rejoined(overrides: list[str], at: int) -> str:
    """The override the shell split at the spaces around its `=`, rejoined.

    `num_rounds= 3`, `num_rounds 3`, `num_rounds =3` and `num_rounds = 3`
    all reach the command as several words; KEY=VALUE where no value is seen.
    """
    text = overrides[at]
    before = overrides[at - 1] if at > 0 else ""
    after = overrides[at + 1 : at + 3]
    if before.endswith("=") and not text.startswith(("+", "-")):
        return before + text  # `num_rounds= 3`
    if after[:1] == ["="] and len(after) == 2:
        return f"{text}={after[1]}"  # `num_rounds = 3`
    if after and after[0].startswith("=") and after[0] != "=":
        return text + after[0]  # `num_rounds =3`
    if after and "=" not in after[0] and not after[0].startswith(("~", "+", "-")):
        return f"{text}={after[0]}"  # `num_rounds 3`
    return f"{text}=VALUE"


def _split_list(overrides: list[str], at: int) -> str | None:
    """The list override the shell split at its spaces before `at`, rejoined.

    `task.train_files=[a.csv, b.csv]` unquoted reaches the command as
    `task.train_files=[a.csv,` and `b.csv]`; None where the override before
    `at` opens no list it leaves open.
    """
    start = overrides[at - 1] if at > 0 else ""
    if "=" not in start or start.count("[") <= start.count("]"):
        return None
    words, still_open = [start], start.count("[") - start.count("]")
    for word in overrides[at:]:
        words.append(word)
        still_open += word.count("[") - word.count("]")
        if still_open <= 0:
            break
    return " ".join(words)
