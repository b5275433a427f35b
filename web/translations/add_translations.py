"""Add Chinese translations to the catalogue and compile it (a developer's tool, not the app's).

    .venv/bin/python web/translations/add_translations.py new.json

new.json maps an English msgid to its Chinese text: {"Crates": "周转箱", ...}; a plural message
is keyed "singular|plural" ({"%(n)s day|%(n)s days": "%(n)s 天"}: Chinese has one form). Existing
entries are replaced; the .po is written sorted as Babel writes it, and the .mo compiled from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

PO = Path(__file__).resolve().parent / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"


def main(path: str) -> None:
    new = json.loads(Path(path).read_text(encoding="utf-8"))
    with PO.open("rb") as f:
        catalogue = read_po(f, locale="zh_Hans_CN")
    for key, text in new.items():
        singular = key.split("|", 1)[0]
        if singular in catalogue:  # Catalog.add keeps an existing entry's string: replace it
            del catalogue[singular]
        if "|" in key:
            singular, plural = key.split("|", 1)
            catalogue.add((singular, plural), (text,))
        else:
            catalogue.add(key, text)
    with PO.open("wb") as f:
        write_po(f, catalogue, width=0)
    with PO.with_suffix(".mo").open("wb") as f:
        write_mo(f, catalogue)
    print(f"{len(new)} translations added; {len(catalogue)} in the catalogue")


if __name__ == "__main__":
    main(sys.argv[1])
