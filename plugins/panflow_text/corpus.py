"""Text corpora: the embedded default (Python's own standard library source and documentation
topics, present on every machine with Python) and the user's files (text, folder, JSONL).

Documents are split deterministically: every ``1/val_fraction``-th document (in a fixed order)
goes to validation; with fewer documents than that, the tail ``val_fraction`` of each document does
(so no document is ever dropped).
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from panflow import DataError

# A fixed, recorded list of pure-Python standard-library modules present in CPython 3.10-3.13.
STDLIB_FILES = (
    "abc.py", "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "cmd.py", "code.py",
    "codecs.py", "colorsys.py", "configparser.py", "contextlib.py", "copy.py", "csv.py", "dataclasses.py",
    "datetime.py", "difflib.py", "dis.py", "enum.py", "fnmatch.py", "fractions.py", "ftplib.py",
    "functools.py", "genericpath.py", "getopt.py", "gettext.py", "glob.py", "gzip.py", "hashlib.py",
    "heapq.py", "hmac.py", "inspect.py", "ipaddress.py", "keyword.py", "linecache.py", "locale.py",
    "mimetypes.py", "numbers.py", "operator.py", "optparse.py", "os.py", "pathlib.py", "pickle.py",
    "pprint.py", "queue.py", "quopri.py", "random.py", "reprlib.py", "sched.py", "secrets.py",
    "selectors.py", "shlex.py", "shutil.py", "socket.py", "statistics.py", "string.py", "stringprep.py",
    "struct.py", "subprocess.py", "tempfile.py", "textwrap.py", "threading.py", "timeit.py", "token.py",
    "tokenize.py", "traceback.py", "types.py", "typing.py", "uuid.py", "warnings.py", "weakref.py",
    "zipfile.py" if sys.version_info < (3, 12) else "zipapp.py",
)


@dataclass
class Corpus:
    train: list[str]
    val: list[str]
    meta: dict


def _split(docs: list[tuple[str, str]], val_fraction: float, meta: dict) -> Corpus:
    if not docs or not any(t.strip() for _, t in docs):
        raise DataError(f"the corpus from {meta.get('source')} is empty")
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    every = max(2, round(1 / val_fraction))
    if len(docs) >= every:  # enough documents: every ``every``-th one is held out whole
        val = [t for i, (_, t) in enumerate(docs) if i % every == every - 1]
        train = [t for i, (_, t) in enumerate(docs) if i % every != every - 1]
    else:  # too few to hold out whole documents: hold out the tail of each one, train on the rest
        cuts = [int(len(t) * (1 - val_fraction)) for _, t in docs]
        train = [t[:c] for (_, t), c in zip(docs, cuts) if t[:c]]
        val = [t[c:] for (_, t), c in zip(docs, cuts) if t[c:]]
    h = hashlib.sha256()
    for name, t in docs:
        h.update(name.encode())
        h.update(t.encode("utf-8", "surrogateescape"))
    return Corpus(train, val, {**meta, "documents": len(docs), "val_documents": len(val), "train_documents": len(train),
                               "split": "documents" if len(docs) >= every else "tails", "sha256": h.hexdigest()[:16],
                               "train_chars": sum(map(len, train)), "val_chars": sum(map(len, val))})


def python_corpus(val_fraction: float = 0.1) -> Corpus:
    """The standard-library files in ``STDLIB_FILES`` plus every pydoc documentation topic."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, missing = [], []
    for name in STDLIB_FILES:
        p = root / name
        if p.exists():
            docs.append((name, p.read_text(encoding="utf-8")))
        else:
            missing.append(name)
    if missing:
        raise DataError(f"standard-library files missing from {root}: {', '.join(missing)}")
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # some distributions strip pydoc_data
        raise DataError("this Python lacks pydoc_data (the documentation topics); pass --data PATH") from exc
    docs += [(f"topic:{k}", topics[k]) for k in sorted(topics)]
    return _split(docs, val_fraction, {"source": "python-stdlib+pydoc-topics", "python": sys.version.split()[0],
                                       "files": list(STDLIB_FILES), "topics": len(topics)})


def _read_text(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path} looks binary (NUL bytes); give text files only")
    if encoding == "bytes":
        return raw.decode("latin-1")  # explicit byte-level path: every byte maps to one character
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid {encoding} at byte {exc.start}; re-encode it, or set "
                        "data.options.encoding=\"bytes\" to train on raw bytes") from exc


TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".text", ".csv", ".tex", ".html", ".json"}


def user_corpus(path: str, val_fraction: float = 0.1, encoding: str = "utf-8", field: str = "text") -> Corpus:
    """A text file, a folder of text files (recursively), or a JSONL file with a ``field`` per line."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path {p} does not exist")
    if p.is_dir():
        every = sorted(f for f in p.rglob("*") if f.is_file())
        files = [f for f in every if f.suffix.lower() in TEXT_SUFFIXES]
        if not files:
            raise DataError(f"{p} holds no text files ({', '.join(sorted(TEXT_SUFFIXES))})")
        docs = [(str(f.relative_to(p)), _read_text(f, encoding)) for f in files]
        skipped = [str(f.relative_to(p)) for f in every if f.suffix.lower() not in TEXT_SUFFIXES]
        return _split(docs, val_fraction, {"source": str(p), "encoding": encoding, "files": len(files),
                                           "skipped_files": len(skipped), "skipped_examples": skipped[:5]})
    elif p.suffix.lower() == ".jsonl":
        docs = []
        for i, line in enumerate(_read_text(p, encoding).splitlines()):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{i + 1} is not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                raise DataError(f"{p}:{i + 1} has no string field '{field}' (set data.options.field)")
            docs.append((f"{p.name}:{i + 1}", obj[field]))
    else:
        docs = [(p.name, _read_text(p, encoding))]
    return _split(docs, val_fraction, {"source": str(p), "encoding": encoding})
