"""The curriculum data behind advance.topic_of_later_grade: where a topic sits, where a pupil is."""

from collections import Counter

import yaml

from detectors import curriculum
from detectors.engine import default_detector


def test_every_topic_has_one_grade():
    data = yaml.safe_load(curriculum.CURRICULUM.read_text(encoding="utf-8"))["vocab"]
    topics = [w for name, words in data.items() if name.startswith("topics_grade_") for w in words]
    repeated = [w for w, n in Counter(topics).items() if n > 1]
    assert not repeated, f"topics listed under two grades: {repeated}"
    assert len(curriculum.topic_grades()) == len(topics)


def test_topic_grade_takes_the_latest_topic_named():
    assert curriculum.topic_grade("讲一次函数和二次函数") == ("二次函数", 9)
    assert curriculum.topic_grade("复习有理数") == ("有理数", 7)
    assert curriculum.topic_grade("学习古诗") is None


def test_pupil_grade_reads_grades_and_stages():
    assert curriculum.pupil_grade("初二学生") == 8
    assert curriculum.pupil_grade("五年级的孩子") == 5
    assert curriculum.pupil_grade("小升初暑假") == 6
    assert curriculum.pupil_grade("高一新生") == 10
    assert curriculum.pupil_grade("幼儿园大班") == 0
    assert curriculum.pupil_grade("周末课程") is None


def test_the_rule_fires_only_above_the_pupils_grade():
    det = default_detector()

    def rules(text: str) -> set[str]:
        return {f.rule_id for f in det.detect(text)}

    assert "advance.topic_of_later_grade" in rules("初一学员暑期拔高：欧姆定律与电功率专题")
    assert "advance.topic_of_later_grade" not in rules("九年级学生学习欧姆定律与电功率")
    assert "advance.topic_of_later_grade" not in rules("高一学生系统学习二次函数的性质")
    found = [f for f in det.detect("初二就开始学二次函数") if f.rule_id == "advance.topic_of_later_grade"]
    assert found and any("“二次函数”是初三的内容，所述学生在初二" in line for line in found[0].explanation)


def test_grade_names():
    assert [curriculum.grade_name(g) for g in (0, 1, 6, 7, 9, 10, 12)] == [
        "学龄前", "一年级", "六年级", "初一", "初三", "高一", "高三"]
