"""Answers files and kit folders that do not belong are refused in one sentence naming the
file and the fix; unanswered trials are counted, never dropped in silence."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from medbench.study import StudyError
from medbench.study.analysis import analyze
from medbench.study.answers import fnv1a32, read_all, read_answers, read_key
from tests.study_kit import answers_file, invoke, kept_run


@pytest.fixture
def kit(tmp_path_factory):
    return kept_run(tmp_path_factory)[1]


@pytest.fixture
def key(kit):
    return read_key(kit)


def left(_trial):
    return "left"


def test_fnv1a32_is_the_published_function():
    # FNV-1a 32-bit test vectors (Fowler, Noll, Vo: draft-eastlake-fnv, section 8)
    assert fnv1a32("") == "811c9dc5"
    assert fnv1a32("a") == "e40c292c"
    assert fnv1a32("foobar") == "bf9cf968"


def test_a_sound_file_reads(key, tmp_path):
    answers = read_answers(answers_file(tmp_path / "a.json", key, "r1", left), key)
    assert answers.reader == "r1" and answers.unanswered == 0
    assert set(answers.answers.values()) == {"left"}


def test_another_kits_answers_are_refused(key, tmp_path):
    other = dict(key, kit_id="0123456789abcdef")
    path = answers_file(tmp_path / "other.json", other, "r1", left)
    with pytest.raises(StudyError, match=re.escape(f"{path} belongs to kit "
                                                   f"'0123456789abcdef', not to this kit")):
        read_answers(path, key)


def test_a_truncated_file_is_refused(key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left)
    path.write_text(path.read_text()[:-200])
    with pytest.raises(StudyError, match=re.escape(f"{path} is cut short or not JSON")):
        read_answers(path, key)


def test_an_edited_answer_is_caught(key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left)
    doc = json.loads(path.read_text())
    doc["answers"][0]["answer"] = "right"  # a "correction" after the fact
    path.write_text(json.dumps(doc))
    with pytest.raises(StudyError, match="was edited or damaged after the kit page wrote it"):
        read_answers(path, key)


def test_a_trial_answered_twice_is_refused(key, tmp_path):
    path = tmp_path / "twice.json"
    twice = dict(key, trials=key["trials"] + key["trials"][:1])  # the file repeats t001
    answers_file(path, twice, "r1", left)
    with pytest.raises(StudyError, match=re.escape(f"{path} answers trial t001 twice")):
        read_answers(path, key)


def test_an_answer_the_protocol_has_not_is_refused(key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", lambda _t: 3)
    with pytest.raises(StudyError, match="gives trial t001 the answer 3, not one of"):
        read_answers(path, key)


def test_one_reader_twice_is_refused(key, tmp_path):
    a = answers_file(tmp_path / "a.json", key, "Dr A", left)
    b = answers_file(tmp_path / "b.json", key, "dr a", left)
    with pytest.raises(StudyError, match="are both reader 'dr a'"):
        read_all([a, b], key)


def test_unanswered_trials_are_counted_and_said(key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left, skip=4)
    result = analyze(key, read_all([path], key))
    assert result.notes[0] == (f"reader r1 left 4 of {len(key['trials'])} trials "
                               f"unanswered (a.json); they are not counted")
    assert len(result.trials) == len(key["trials"]) - 4


def test_a_kit_folder_without_an_image_is_refused(kit, tmp_path):
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    victim = sorted((copy / "images").iterdir())[2]
    victim.unlink()
    with pytest.raises(StudyError, match=re.escape(f"lacks images/{victim.name}; copy the "
                                                   f"whole kit folder again")):
        read_key(copy)
    shutil.copy(kit / "images" / victim.name, victim)
    victim.write_text(victim.read_text().replace("A", "B", 1))
    with pytest.raises(StudyError, match="is not the file the kit was made with"):
        read_key(copy)


def test_the_cli_says_it_in_one_line(kit, key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left)
    path.write_text(path.read_text()[:50])
    out = invoke("study", "analyze", kit, path, "--out", tmp_path / "x", code=1)
    assert out.startswith("Error: the answers file") and out.count("\n") == 1


def _doc(key, answers, reader="r1"):
    return {"format": "medbench-study-answers", "kit_id": key["kit_id"], "reader": reader,
            "answers": answers,
            "digest": fnv1a32(json.dumps([key["kit_id"], reader, answers],
                                         separators=(",", ":"), ensure_ascii=False))}


@pytest.mark.parametrize("item, said", [
    ({"trial": ["t001"], "answer": "left", "ms": 1}, "answers trial ['t001'], which"),
    ({"trial": "t001", "answer": ["left"], "ms": 1}, "gives trial t001 the answer ['left']"),
    ({"trial": "t001", "answer": {"a": 1}, "ms": 1}, "gives trial t001 the answer {'a': 1}"),
    ({"trial": "t001", "answer": "left", "ms": 10 ** 40}, "gives trial t001 the time 1000"),
])
def test_answers_of_the_wrong_type_or_size_are_refused_in_one_sentence(key, tmp_path, item,
                                                                        said):
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(_doc(key, [item])))
    with pytest.raises(StudyError, match=re.escape(f"{path} {said}")):
        read_answers(path, key)


def test_json_nested_too_deep_is_refused_as_not_json(key, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StudyError, match=re.escape(f"{path} is cut short or not JSON")):
        read_answers(path, key)


def test_answers_of_no_test_trial_are_refused_not_a_traceback(kit, key, tmp_path):
    catch = [{"trial": t["id"], "answer": "left", "ms": 5}
             for t in key["trials"] if t["kind"] == "catch"]
    for name, answers in (("none.json", []), ("catch.json", catch)):
        path = tmp_path / name
        path.write_text(json.dumps(_doc(key, answers)))
        out = invoke("study", "analyze", kit, path, "--out", tmp_path / "x", code=1)
        assert out == (f"Error: the answers file(s) {path} answer no test trial (only catch "
                       f"trials or none); give the files the kit page downloaded after the "
                       f"readers read\n")


@pytest.mark.parametrize("edit, said", [
    (lambda k: k.pop("kit_id"), "its 'kit_id' is missing or not a str"),
    (lambda k: k.update(files=[1]), "its 'files' is missing or not a dict"),
    (lambda k: k["trials"][0].pop("id"), "a trial lacks one of id, kind"),
    (lambda k: k.update(protocol="x"), "its protocol 'x' is not 2afc, revealed or rating"),
    (lambda k: next(t for t in k["trials"] if t["kind"] == "test").update(ratio=None),
     "test trial t0"),
    (lambda k: k.update(images=[]), "test trial t0"),
    (lambda k: k["files"].update({"../../x": "0"}), "its file '../../x' is not an images/"),
])
def test_a_damaged_key_is_refused_in_one_sentence(kit, tmp_path, edit, said):
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    key = json.loads((copy / "key.json").read_text())
    edit(key)
    (copy / "key.json").write_text(json.dumps(key))
    with pytest.raises(StudyError, match=re.escape(f"{copy / 'key.json'} was edited or "
                                                   f"damaged ({said}")):
        read_key(copy)


def test_a_file_twice_a_folder_and_an_unwritable_out_are_one_line(kit, key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left)
    out = invoke("study", "analyze", kit, path, path, "--out", tmp_path / "x", code=1)
    assert out == f"Error: the answers file {path} is given twice; name each reader's file once\n"
    out = invoke("study", "analyze", kit, tmp_path, "--out", tmp_path / "x", code=1)
    assert out.startswith(f"Error: the answers file {tmp_path} cannot be read")
    (tmp_path / "f").write_text("")
    out = invoke("study", "analyze", kit, path, "--out", tmp_path / "f" / "sub", code=1)
    assert out.startswith(f"Error: cannot write the analysis into {tmp_path / 'f' / 'sub'} (")
    assert out.count("\n") == 1


@pytest.mark.parametrize("reader", ["x\nNR: 9\nBEGIN DATA:", "a\tb", "r\u202e1"])
def test_a_reader_name_with_a_control_character_is_refused(key, tmp_path, reader):
    """A line break in a reader's name would write lines of its own into study.imrmc's
    header (NR:, BEGIN DATA:) and the tables."""
    path = answers_file(tmp_path / "a.json", key, reader, left)
    with pytest.raises(StudyError, match=re.escape(f"{path} names its reader")):
        read_answers(path, key)


def test_a_lone_surrogate_in_an_answer_is_a_damaged_file_not_a_traceback(key, tmp_path):
    path = answers_file(tmp_path / "a.json", key, "r1", left)
    path.write_text(path.read_text().replace('"zoom": "1"', '"zoom": "\\ud800"', 1))
    with pytest.raises(StudyError, match=re.escape(f"{path} was edited or damaged")):
        read_answers(path, key)


def test_a_key_json_nested_too_deep_is_refused_as_not_json(kit, tmp_path):
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    (copy / "key.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StudyError, match=re.escape(f"{copy / 'key.json'} is not the JSON")):
        read_key(copy)


def test_a_huge_file_is_refused_before_it_is_read(key, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: no disk used
    with pytest.raises(StudyError, match=re.escape(f"{path} is 65 MiB, far more than")):
        read_answers(path, key)
