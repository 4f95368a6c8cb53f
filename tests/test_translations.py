"""Chinese is the default language: every user-facing string in the code must be in the zh_Hans
catalogue, translated, and the compiled catalogue must match it."""

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
SOURCES = ("beile", "orders", "workflows", "integrations", "templates")


def read_po(path: Path) -> dict[str, tuple[str, bool]]:
    """{msgid: (msgstr, fuzzy)} for a .po file — enough of the format for this check (Django's
    makemessages writes one-line msgids unless they are long, which it wraps as "" + lines).
    An entry with a msgctxt is keyed "context\x04msgid", as gettext keys it in the .mo."""
    entries: dict[str, tuple[str, bool]] = {}
    msgid = msgstr = context = None
    fuzzy = False
    current = None
    plural = False

    def flush():
        if msgid:  # the header has an empty msgid
            entries[msgid if context is None else f"{context}\x04{msgid}"] = (msgstr or "", fuzzy)

    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if not line:
            flush()
            msgid = msgstr = context = None
            fuzzy = plural = False
            current = None
        elif line.startswith("#,"):
            fuzzy = "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith("msgid_plural "):
            plural = True
            current = None
        elif line.startswith("msgctxt "):
            context, current = _unquote(line[8:]), "ctxt"
        elif line.startswith("msgid "):
            msgid, current = _unquote(line[6:]), "id"
        elif line.startswith("msgstr[0] ") or (line.startswith("msgstr ") and not plural):
            msgstr, current = _unquote(line.split(" ", 1)[1]), "str"
        elif line.startswith("msgstr["):
            current = None
        elif line.startswith('"') and current == "ctxt":
            context += _unquote(line)
        elif line.startswith('"') and current == "id":
            msgid += _unquote(line)
        elif line.startswith('"') and current == "str":
            msgstr += _unquote(line)
    return entries


def _unquote(text: str) -> str:
    return bytes(text.strip()[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def test_every_catalogue_entry_is_translated():
    entries = read_po(CATALOGUE)
    untranslated = [msgid for msgid, (msgstr, fuzzy) in entries.items() if not msgstr or fuzzy]
    assert not untranslated, (
        f"{len(untranslated)} strings lack a Chinese translation (run `make messages`, translate): {untranslated[:20]}"
    )


def test_catalogue_covers_the_code(tmp_path):
    """Extract the strings of the current code into a scratch copy and compare with the catalogue."""
    if not shutil.which("xgettext"):
        pytest.skip("needs GNU gettext (apt-get install gettext)")
    for name in SOURCES:
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "locale", "migrations"))
    (tmp_path / "locale").mkdir()
    with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            call_command("makemessages", locale=["zh_Hans"], verbosity=0)
        finally:
            os.chdir(cwd)
    extracted = set(read_po(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    missing = sorted(extracted - set(read_po(CATALOGUE)))
    assert not missing, f"{len(missing)} strings in the code are not in the catalogue (run `make messages`): {missing[:20]}"


def test_compiled_catalogue_is_current():
    """The .mo that Django reads says the same as the .po under review."""
    entries = read_po(CATALOGUE)
    with translation.override("zh-hans"):
        stale = [msgid for msgid, (msgstr, _) in entries.items() if "%" not in msgid and translation.gettext(msgid) != msgstr]
    assert not stale, f"django.mo is stale for {len(stale)} strings (run `make messages`): {stale[:10]}"
