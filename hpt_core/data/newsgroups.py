"""20 Newsgroups: loading the JSONL dump with its taxonomy, and stripping e-mail headers, quoted replies and
signatures from the messages."""

from __future__ import annotations

import re
from pathlib import Path

from hpt_core.data.loading import load_dataset
from hpt_core.data.types import Dataset
from hpt_core.hierarchy import LabelHierarchy

__all__ = ["load_20newsgroups", "strip_newsgroup_message", "strip_newsgroup_texts"]

# A line that quotes or introduces a quote: "> ...", "| ...", "In article <...> X writes:", "... wrote:".
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_message(text: str) -> str:
    """A newsgroup message without its e-mail headers, quoted replies and signature block.

    The three removals of scikit-learn's ``remove=("headers", "footers", "quotes")``: everything up to the first
    blank line (the headers); every line that quotes (``>``, ``|``) or introduces a quote (``... writes:``); and the
    signature, i.e. everything after the last line made only of dashes or blanks. May return ``""``.
    """
    _, _, body = text.partition("\n\n")
    body = "\n".join(line for line in body.split("\n") if not _QUOTE_LINE.search(line))
    lines = body.strip().split("\n")
    for cut in range(len(lines) - 1, -1, -1):
        if lines[cut].strip().strip("-") == "":
            break
    return "\n".join(lines[:cut]) if cut > 0 else body


def load_20newsgroups(file: str | Path, hierarchy: LabelHierarchy | None = None, strip: bool = False) -> Dataset:
    """Load the 20 Newsgroups JSONL dump; uses ``20ng.taxonomy`` next to the file when no hierarchy is given.

    ``strip=True`` removes headers, quoted replies and signatures (``strip_newsgroup_message``) so a model cannot key
    on e-mail addresses or the ``Newsgroups:`` line; messages left empty keep their place with ``""`` as text.
    """
    taxonomy = Path(file).with_name("20ng.taxonomy")
    if hierarchy is None and taxonomy.is_file():
        hierarchy = LabelHierarchy.from_taxonomy(taxonomy)
    dataset = load_dataset(file, hierarchy=hierarchy)
    return strip_newsgroup_texts(dataset) if strip else dataset


def strip_newsgroup_texts(dataset: Dataset) -> Dataset:
    """``strip_newsgroup_message`` applied to every document's text, in place; returns ``dataset``."""
    for doc in dataset.documents:
        doc.text = strip_newsgroup_message(doc.text)
    return dataset
