"""The documentation stays true: what README.md and docs/*.md name exists, and every setting is documented.

* every ``make TARGET`` in a command is a target of the Makefile;
* every spider argument (``-a NAME=``, and the README's argument table) is one the ``images``
  spider declares, and every argument it declares is in that table;
* every ``IMGSCRAPER_*`` name is a setting of ``imgscraper/settings.py``, and every ``-s NAME=``
  a setting Scrapy or the project knows;
* every setting of the settings table (``imgscraper/settingspec.py``) and every setting
  ``imgscraper/settings.py`` defines has a row in ``docs/settings.md``, and every row is a setting.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
from pathlib import Path

import pytest

from imgscraper import settings as project_settings
from imgscraper.addons.settingscheck import known_setting_names
from imgscraper.settingspec import SETTINGS, Internal
from imgscraper.spiders.images import ImagesSpider

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Settings of imgscraper/settings.py that wire components together rather than change
#: what a crawl does, and the ones set by the crawl command, not by hand: docs/settings.md need not list them.
WIRING = {
    "BOT_NAME", "SPIDER_MODULES", "NEWSPIDER_MODULE", "COMMANDS_MODULE", "ADDONS", "EXTENSIONS",
    "ITEM_PIPELINES", "DOWNLOADER_MIDDLEWARES",
    *(name for name, kind in SETTINGS.items() if isinstance(kind, Internal)),
}

_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_MAKE = re.compile(r"\bmake\s+(?:[A-Z_]+=\S*\s+)*([a-z][\w-]*)")
_SPIDER_ARGUMENT = re.compile(r"(?:^|\s)-a\s+([A-Za-z_]\w*)=")
_SETTING_ARGUMENT = re.compile(r"(?:^|[\s\"'])-s\s+['\"]?([A-Za-z_]\w*)=")
_PROJECT_SETTING = re.compile(r"\bIMGSCRAPER_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*])|\bIMGSCRAPER_[A-Z0-9_]*_\*")


#: What an example of a wrong setting shows: its name is wrong on purpose.
_SHOWS_AN_ERROR = ("Bad setting:", "unknown setting ")
#: What stands for any setting or argument in a command's synopsis.
PLACEHOLDERS = {"NAME"}


def without_error_examples(text: str) -> str:
    """``text`` without the code blocks and spans that show the error a wrong name gets."""
    return _CODE.sub(lambda m: "" if any(s in m.group(0) for s in _SHOWS_AN_ERROR) else m.group(0), text)


def code_of(text: str) -> list[str]:
    """The code blocks and code spans of a Markdown text (where commands and names are
    written), leaving out examples of errors."""
    return [match.group(0).strip("`") for match in _CODE.finditer(without_error_examples(text))]


def find_in_code(pattern: re.Pattern[str], text: str) -> set[str]:
    return {name for code in code_of(text) for name in pattern.findall(code)}


def make_targets(makefile: str) -> set[str]:
    """The targets a Makefile defines (rules, not variable assignments)."""
    return {
        name
        for line in makefile.splitlines()
        if (rule := re.match(r"([A-Za-z0-9_.$()/-][^:=\s]*(?:\s+[^:=\s]+)*)\s*::?(?!=)", line))
        for name in rule.group(1).split()
    }


def make_targets_named(text: str) -> set[str]:
    return find_in_code(_MAKE, text)


def spider_arguments() -> set[str]:
    """The arguments the images spider declares: the named parameters of its ``__init__``."""
    parameters = inspect.signature(ImagesSpider.__init__).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}


def spider_arguments_named(text: str) -> set[str]:
    return find_in_code(_SPIDER_ARGUMENT, text) - PLACEHOLDERS


def argument_table(readme: str) -> set[str]:
    """The first-column names of the table under the README's "Spider arguments" heading."""
    section = readme.split("## Spider arguments", 1)[1].split("\n## ", 1)[0]
    return {match.group(1) for match in re.finditer(r"^\|\s*`([\w]+)`\s*\|", section, re.MULTILINE)}


def project_settings_named(text: str) -> set[str]:
    """``IMGSCRAPER_*`` names anywhere in ``text``; ``IMGSCRAPER_RENDER_BLOCK_*`` names a family."""
    return set(_PROJECT_SETTING.findall(without_error_examples(text)))


def defined_settings() -> set[str]:
    return {name for name in dir(project_settings) if name.isupper()}


def documented_settings(settings_md: str) -> set[str]:
    """The names in the first column of docs/settings.md's tables."""
    names = set()
    for row in re.finditer(r"^\|([^|\n]*)\|", settings_md, re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", row.group(1)))
    return names


def setting_exists(name: str, defined: set[str]) -> bool:
    if name.endswith("*"):
        return any(setting.startswith(name[:-1]) for setting in defined)
    return name in defined


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_make_target_named_exists(doc: Path):
    targets = make_targets((ROOT / "Makefile").read_text())
    named = make_targets_named(doc.read_text())
    assert named - targets == set(), f"{doc.name} names make targets the Makefile lacks"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_spider_argument_named_exists(doc: Path):
    assert spider_arguments_named(doc.read_text()) - spider_arguments() == set()


def test_readme_argument_table_is_the_spiders_arguments():
    assert argument_table((ROOT / "README.md").read_text()) == spider_arguments()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_project_setting_named_exists(doc: Path):
    defined = defined_settings()
    unknown = {name for name in project_settings_named(doc.read_text()) if not setting_exists(name, defined)}
    assert unknown == set(), f"{doc.name} names settings imgscraper/settings.py does not define"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_setting_passed_with_dash_s_is_known(doc: Path):
    unknown = find_in_code(_SETTING_ARGUMENT, doc.read_text()) - PLACEHOLDERS - known_setting_names()
    assert unknown == set(), f"{doc.name} passes settings that neither Scrapy nor the project knows"


def test_every_setting_of_the_table_and_of_settings_py_has_a_row_in_docs_settings():
    documented = documented_settings((ROOT / "docs" / "settings.md").read_text())
    assert (set(SETTINGS) | defined_settings()) - WIRING - documented == set()


def test_every_row_of_docs_settings_is_a_setting():
    documented = documented_settings((ROOT / "docs" / "settings.md").read_text())
    assert documented - known_setting_names() == set()


def test_make_help_names_every_target_and_variable():
    makefile = (ROOT / "Makefile").read_text()
    targets = {name for name in make_targets(makefile) if not name.startswith(("$", "."))}
    assigned = set(re.findall(r"^([A-Z_]+)\s*[:?]?=", makefile, re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_]+)\s*\?=", makefile, re.MULTILINE))
    variables |= set(re.findall(r"\$\(([A-Z_]+)\)", makefile)) - assigned - {"CURDIR", "HOME"}
    help_text = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
    assert {target for target in targets if not re.search(rf"\bmake {re.escape(target)}\b", help_text)} == set()
    assert {name for name in variables if not re.search(rf"\b{name}\b", help_text)} == set()


#: What a command writes into the checkout: a feed (-O/-o FILE), a store or a JOBDIR (-s NAME=DIR, make's STORE=DIR).
_WRITTEN = re.compile(r"(?:^|\s)-[Oo]\s+(\S+)|\b(?:IMAGES_STORE|JOBDIR|STORE|OUT)=['\"]?([^\s'\"]+)")


def paths_written(text: str) -> set[str]:
    """The relative paths the commands of ``text`` write (``$(hostname)``, ``$$``: any name)."""
    found = {feed or folder for code in code_of(text) for feed, folder in _WRITTEN.findall(code)}
    paths = {re.sub(r"\$\([^)]*\)|\$\$", "x", path) for path in found if "://" not in path and not path.startswith(("/", "~"))}
    return paths - {"dir", "file"}  # a synopsis's placeholders: STORE=dir


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_what_the_commands_write_is_ignored_by_git(doc: Path):
    written = paths_written(doc.read_text())
    if doc.name == "README.md":
        written |= set(re.findall(r"^(?:STORE|OUT) \?= (\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE))
    tracked = [path for path in sorted(written)
               if subprocess.run(["git", "check-ignore", "-q", f"{path}/file" if "." not in path else path],
                                 cwd=ROOT).returncode != 0]
    assert tracked == [], f"{doc.name}'s commands write what .gitignore does not cover"


# The checks themselves, on names that are wrong: each must be caught.

def test_a_wrong_make_target_is_caught():
    targets = make_targets((ROOT / "Makefile").read_text())
    assert {"crawl", "test", "bench", "scrapyd", "deploy", "schedule", "scheduler", "faults"} <= targets
    assert "URL" not in targets and "SCRAPYD_PORT" not in targets
    assert make_targets_named("```\nmake crawl URL=x\nSCRAPYD_URL=y make shedule URL=z\n```") == {"crawl", "shedule"}


def test_a_wrong_spider_argument_is_caught():
    assert spider_arguments() >= {"url", "urls_file", "depth", "follow_domains", "download", "render"}
    named = spider_arguments_named("`scrapy crawl images -a url=x -a dept=1`")
    assert named - spider_arguments() == {"dept"}


def test_a_wrong_project_setting_is_caught():
    named = project_settings_named("-s IMGSCRAPER_EXPIRE=1d, `IMGSCRAPER_RENDER_BLOCK_*`, IMGSCRAPER_NOPE_*")
    assert named == {"IMGSCRAPER_EXPIRE", "IMGSCRAPER_RENDER_BLOCK_*", "IMGSCRAPER_NOPE_*"}
    defined = defined_settings()
    assert [name for name in sorted(named) if not setting_exists(name, defined)] == ["IMGSCRAPER_EXPIRE", "IMGSCRAPER_NOPE_*"]


def test_a_setting_without_a_row_is_caught():
    documented = documented_settings("| `IMGSCRAPER_SRCSET` | `largest` | mentions `IMGSCRAPER_EXPIRES` |\n")
    assert documented == {"IMGSCRAPER_SRCSET"}


# --- dotted paths and module files named anywhere -------------------------------------------------

_DOTTED = re.compile(r"\bimgscraper(?:\.[A-Za-z_]\w*)+")
_MODULE_FILE = re.compile(r"\bimgscraper/[\w/]+\.py\b")
#: Where the project names its modules and classes: the docs, the settings, the code's own comments.
NAMING = [*DOCS, ROOT / "Makefile", ROOT / "setup.py", ROOT / "scrapy.cfg", *sorted((ROOT / "deploy").iterdir()),
          *sorted((ROOT / "imgscraper").rglob("*.py"))]


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or a name (and attributes) in one."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            if not hasattr(obj, attribute):
                # A field without a default (a dataclass's) is named by the class's annotations only.
                return attribute == parts[-1] and attribute in getattr(obj, "__annotations__", {})
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("path", NAMING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_dotted_path_and_module_file_named_exists(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not {name for name in set(_DOTTED.findall(text)) if not resolves(name)}
    assert not {name for name in set(_MODULE_FILE.findall(text)) if not (ROOT / name).is_file()}


def test_a_wrong_dotted_path_is_caught():
    assert resolves("imgscraper.pipelines.images.ImageStorePipeline.file_path")
    assert not resolves("imgscraper.pipelines.ImageStorePipeline")
    assert not resolves("imgscraper.pipelines.images.ImageStorePipelin")
