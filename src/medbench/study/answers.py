"""Reading a kit's key and its readers' answers files, refusing what does not belong.

Every refusal is one sentence naming the file and the fix: an answers file of another kit
(its ``kit_id`` is not the key's), one cut short or not JSON, one whose answers were edited
after the page wrote them (the FNV-1a digest, :data:`medbench.study.page.DIGEST`, no longer
matches), a trial answered twice or unknown to the kit, an answer the protocol does not
allow, two files of one reader; and a kit folder that lacks an image file or holds one
changed since it was made. So is what no page writes: a trial or answer of another JSON
type, a time past a year, a reader name with a control character (it would write lines of
its own into ``study.imrmc``), JSON nested too deep, a file over :data:`MAX_BYTES`, one
file given twice, and a ``key.json`` edited out of shape. Trials a reader left unanswered
are not errors: they are counted per reader and said (:attr:`Answers.unanswered`).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from medbench.study import StudyError
from medbench.study.kit import KEY_NAME, KIT_FORMAT

ANSWERS_FORMAT = "medbench-study-answers"
#: Longest time on one trial an answers file may give (a year, in ms): more is no time the
#: page measured, and would overflow the medians.
MAX_MS = 365 * 24 * 3600 * 1000
#: Largest answers file read: a trial's answer takes ~150 bytes, so 64 MiB is 400,000 trials.
MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Answers:
    """One reader's checked answers: trial id → answer (and time in ms)."""

    path: Path
    reader: str
    answers: dict[str, object]
    ms: dict[str, int]
    unanswered: int


def read_key(kit: Path) -> dict:
    """The kit's ``key.json``, with the kit folder checked (every image file present and
    as written)."""
    path = Path(kit) / KEY_NAME
    if not path.is_file():
        raise StudyError(f"{path} is missing; point at the kit folder `medbench study make` "
                         f"wrote (its key.json stays with the organizer, not the readers)")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        raise StudyError(f"{path} is not the JSON `medbench study make` wrote "
                         f"({str(exc)[:120] or type(exc).__name__}); restore it from your "
                         f"copy of the kit") from None
    if not isinstance(key, dict) or key.get("format") != KIT_FORMAT or "trials" not in key:
        raise StudyError(f"{path} is not a medbench study key; point at a kit folder made "
                         f"by `medbench study make`")
    problem = _key_problem(key)
    if problem:
        raise StudyError(f"{path} was edited or damaged ({problem}); restore it from your "
                         f"copy of the kit, or make the kit again with the same options and "
                         f"--seed")
    for name, sha in key["files"].items():
        file = Path(kit) / name
        if not file.is_file():
            raise StudyError(f"the kit folder {kit} lacks {name}; copy the whole kit folder "
                             f"again (or make it again with the same options and --seed)")
        if hashlib.sha256(file.read_bytes()).hexdigest() != sha:
            raise StudyError(f"{file} is not the file the kit was made with; copy the whole "
                             f"kit folder again")
    return key


_TRIAL_FIELDS = ("id", "kind", "dataset", "image_id", "codec", "ratio", "correct")


def _key_problem(key: dict) -> str | None:
    """What is wrong with a key's shape (what ``analyze`` reads of it), or None."""
    for name, kind in (("kit_id", str), ("run_id", str), ("files", dict), ("trials", list),
                       ("images", list), ("codecs", list), ("ratios", list)):
        if not isinstance(key.get(name), kind):
            return f"its {name!r} is missing or not a {kind.__name__}"
    if key.get("protocol") not in ("2afc", "revealed", "rating"):
        return f"its protocol {str(key.get('protocol'))[:40]!r} is not 2afc, revealed or rating"
    if any(not isinstance(r, (int, float)) or isinstance(r, bool) for r in key["ratios"]):
        return "a ratio is not a number"
    for name, sha in key["files"].items():
        if not name.startswith("images/") or ".." in name or "\\" in name \
                or not isinstance(sha, str):
            return f"its file {name[:60]!r} is not an images/ file of the kit"
    for trial in key["trials"]:
        if not isinstance(trial, dict) or any(f not in trial for f in _TRIAL_FIELDS) \
                or not isinstance(trial["id"], str):
            return f"a trial lacks one of {', '.join(_TRIAL_FIELDS)}: {str(trial)[:60]}"
        if trial["kind"] == "test" and (
                not isinstance(trial["codec"], str) or isinstance(trial["ratio"], bool)
                or not isinstance(trial["ratio"], (int, float))
                or f"{trial['dataset']}/{trial['image_id']}" not in key["images"]):
            return (f"test trial {str(trial['id'])[:20]} lacks its codec, its ratio or an "
                    f"image of the key's images")
    return None


def fnv1a32(text: str) -> str:
    """FNV-1a, 32 bit, of ``text``'s UTF-8 bytes, as the page computes it (a lone
    surrogate, which no page writes, is hashed as its 3 bytes: such a file fails its
    digest instead of raising)."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8", "surrogatepass"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def read_answers(path: Path, key: dict) -> Answers:
    """One answers file, checked against ``key`` (module notes)."""
    path = Path(path)
    fix = "download the answers again from the reader's browser (D on the kit page)"
    try:
        size = path.stat().st_size if path.is_file() else 0
        if size > MAX_BYTES:  # read whole, it would take gigabytes of memory
            raise StudyError(f"the answers file {path} is {size / 2**20:.0f} MiB, far more "
                             f"than any kit's answers (under {MAX_BYTES // 2**20} MiB); give "
                             f"the answers-<kit>-<reader>.json the kit page downloaded")
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"the answers file {path} does not exist; check its name") from None
    except OSError as exc:  # a folder, unreadable
        raise StudyError(f"the answers file {path} cannot be read ({exc.strerror}); name the "
                         f"answers-<kit>-<reader>.json file itself") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        raise StudyError(f"the answers file {path} is cut short or not JSON "
                         f"({str(exc)[:120] or type(exc).__name__}); {fix}") from None
    if not isinstance(doc, dict) or doc.get("format") != ANSWERS_FORMAT:
        raise StudyError(f"{path} is not an answers file of a medbench reading kit; give the "
                         f"answers-<kit>-<reader>.json the kit page downloaded")
    if doc.get("kit_id") != key["kit_id"]:
        raise StudyError(f"the answers file {path} belongs to kit {doc.get('kit_id')!r}, not "
                         f"to this kit {key['kit_id']!r}; analyze it with its own kit folder")
    reader, answers = doc.get("reader"), doc.get("answers")
    if not isinstance(reader, str) or not reader.strip() or not isinstance(answers, list):
        raise StudyError(f"the answers file {path} lacks its reader or answers; {fix}")
    if any(unicodedata.category(ch).startswith("C") for ch in reader):
        raise StudyError(f"the answers file {path} names its reader {reader[:60]!r} with a "
                         f"line break or other control character, which would break the "
                         f"tables and study.imrmc written from it; have the reader type their "
                         f"name again on the kit page and download the answers again")
    canonical = json.dumps([doc["kit_id"], reader, answers], separators=(",", ":"),
                           ensure_ascii=False)
    if doc.get("digest") != fnv1a32(canonical):
        raise StudyError(f"the answers file {path} was edited or damaged after the kit page "
                         f"wrote it (its digest does not match its answers); {fix}")
    trials = {t["id"]: t for t in key["trials"]}
    allowed = ({1, 2, 3, 4, 5} if key["protocol"] == "rating" else {"left", "right"})
    chosen: dict[str, object] = {}
    ms: dict[str, int] = {}
    for item in answers:
        trial = item.get("trial") if isinstance(item, dict) else None
        if not isinstance(trial, str) or trial not in trials:
            raise StudyError(f"the answers file {path} answers trial {repr(trial)[:60]}, "
                             f"which this kit does not have; {fix}")
        if trial in chosen:
            raise StudyError(f"the answers file {path} answers trial {trial} twice; {fix}")
        value = item.get("answer")
        if not isinstance(value, (int, float, str)) or isinstance(value, bool) or \
                value not in allowed:
            raise StudyError(f"the answers file {path} gives trial {trial} the answer "
                             f"{repr(value)[:60]}, not one of {sorted(allowed, key=str)}; {fix}")
        took = item.get("ms")
        if isinstance(took, bool) or not isinstance(took, int) or not 0 <= took <= MAX_MS:
            raise StudyError(f"the answers file {path} gives trial {trial} the time "
                             f"{str(took)[:40]} ms, not a whole number from 0 to {MAX_MS} "
                             f"(a year); {fix}")
        chosen[trial] = value
        ms[trial] = took
    return Answers(path, reader.strip(), chosen, ms, len(trials) - len(chosen))


def read_all(paths: list[Path], key: dict) -> list[Answers]:
    """Every answers file, checked; two files of one reader are refused."""
    out: list[Answers] = []
    for path in paths:
        again = next((a for a in out if Path(a.path).resolve() == Path(path).resolve()), None)
        if again is not None:
            raise StudyError(f"the answers file {path} is given twice; name each reader's "
                             f"file once")
        answers = read_answers(path, key)
        twin = next((a for a in out if a.reader.casefold() == answers.reader.casefold()), None)
        if twin is not None:
            raise StudyError(f"{path} and {twin.path} are both reader {answers.reader!r}'s; "
                             f"give one file per reader (the latest download holds every "
                             f"answer so far)")
        out.append(answers)
    if not out:
        raise StudyError("no answers file given; name the answers-<kit>-<reader>.json files")
    return out
