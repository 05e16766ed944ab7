"""A folder's tokenizer, loaded by transformers; what cannot be loaded is named.

transformers reads a folder's tokenizer.json itself as well as through
`tokenizers`, so a stub or a file another `tokenizers` version wrote ends in a
bare KeyError, a TypeError or the Rust side's plain Exception. The file is
parsed by `tokenizers` first, whose reason (field and column) is said.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tokenizers

from fedmodel.errors import FedmodelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOKENIZER_FILE = "tokenizer.json"


def parsed_tokenizer_file(model_dir: Path, *, named: str) -> tokenizers.Tokenizer:
    """`model_dir`'s tokenizer.json; FedmodelError when `tokenizers` cannot parse it.

    `named` is how the user gave the folder (`--model DIR`).
    """
    path = model_dir / TOKENIZER_FILE
    try:
        return tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a plain Exception
        raise FedmodelError(
            f"{named}: {TOKENIZER_FILE} cannot be loaded by tokenizers "
            f"{tokenizers.__version__} ({exc}); re-export it or use the version "
            "that wrote it"
        ) from exc


def folder_tokenizer(location: str, *, named: str, fix: str) -> PreTrainedTokenizerBase:
    """The tokenizer transformers builds from `location` (a folder or a hub id).

    Raises FedmodelError, said as `named` and ending with `fix`, when it
    cannot be loaded; where the folder's tokenizer.json is what `tokenizers`
    cannot parse, with the parser's reason (read only then, not on every
    load). No tokenizer code in the folder is run: fedmodel's are stock ones,
    and asking would block on stdin.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=False)
    except Exception as exc:  # a file tokenizers reads may still miss a key
        if (Path(location) / TOKENIZER_FILE).is_file():
            parsed_tokenizer_file(Path(location), named=named)
        raise FedmodelError(
            f"{named}: no tokenizer could be loaded ({type(exc).__name__}: {exc}); "
            f"{fix}"
        ) from exc
