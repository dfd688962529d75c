"""Chinese time/day/period/amount parsing for off_hours_schedule and prepaid_fees."""

from __future__ import annotations

import pytest

from detectors import detect
from detectors.fees import amounts, cn_number, lessons, months, unit_total
from detectors.schedule import fmt, parse_minutes, parse_times


@pytest.mark.parametrize(
    "text,start,end",
    [
        ("每晚7:00-9:00", "19:00", "21:00"),
        ("晚上9点半", "21:30", None),
        ("21:30下课", None, "21:30"),
        ("下午五点到晚上八点四十", "17:00", "20:40"),
        ("周六上午9:00-11:00", "09:00", "11:00"),
        ("晚8点一刻", "20:15", None),
    ],
)
def test_parse_times(text, start, end):
    (t,) = parse_times(text)
    assert (t.start and fmt(t.start)) == start and (t.end and fmt(t.end)) == end


def test_parse_minutes_and_numbers():
    assert parse_minutes("每节课45分钟") == 45
    assert parse_minutes("2小时/门") == 120
    assert parse_minutes("1.5小时") == 90
    assert cn_number("一万二") == 12000 and cn_number("五千") == 5000 and cn_number("1.2万") == 12000
    assert months("一次性缴纳全年") == 12 and months("12个月") == 12 and months("两年课时包") == 24
    # lessons given with the ones bought are one purchase, unless the text states the total
    assert lessons("买100节送20节") == 120
    assert lessons("40课时记忆力,以及赠送20课时专注力及20课时特训课") == 80
    assert lessons("报30节送10节,共40节") == 40
    assert lessons("一年级20课时,二年级24课时") == 24
    # a price per lesson and the lessons sold at it; the lesson in the price is not a count
    assert unit_total("仅售288元/次课,限购20次") == (288, 20)
    assert unit_total("40课时起报,每课时150元") == (150, 40)
    assert unit_total("每课时150元") is None
    assert amounts("¥11998元,联报优惠¥3880") == [11998, 3880]


@pytest.mark.parametrize(
    "text,flag",
    [
        ("周六上午初二数学同步班", True),
        ("晚上9点半下课的英语提高班", True),
        ("初三物理课21:30下课", True),
        ("每晚7:00-9:00 数学晚自习班", True),
        ("寒假语文阅读班", True),
        ("国庆假期物理冲刺班", True),
        ("在线直播课每节60分钟，英语精讲", True),
        ("周六美术班", False),
        ("暑假编程营", False),
        ("周末篮球课", False),
        ("美术课 19:00-20:30", False),
        ("线上直播课20:50结束", False),
        ("线下数学课每节课45分钟", False),
        ("在线英语课每节25分钟", False),
    ],
)
def test_off_hours(text, flag):
    assert any(f.category == "off_hours_schedule" for f in detect(text)) is flag


@pytest.mark.parametrize(
    "text,flag",
    [
        ("一次性缴纳全年学费", True),
        ("12个月课程包特惠", True),
        ("年卡", True),
        ("暑秋联报立减300", True),
        ("60课时以上套餐一次性购买", True),
        ("一次性缴纳学费超过5000元的优惠", True),
        ("一次性预交学费8000元", True),
        ("3个月课程包", False),
        ("一次性收取3个月费用", False),
        ("学费每期3000元", False),
        ("每期20课时，按期缴费", False),
    ],
)
def test_prepaid(text, flag):
    assert any(f.category == "prepaid_fees" for f in detect(text)) is flag


@pytest.mark.parametrize(
    "text,flag",
    [
        ("美术、音乐、体育暑假班火热报名", False),
        ("暑假编程课程基本报满", False),
        ("暑假数学班火热报名", True),
        ("周末物理化学培优", True),
        ("暑期史地政复习营", True),
    ],
)
def test_subject_scope(text, flag):
    assert any(f.category == "off_hours_schedule" for f in detect(text)) is flag


def test_a_lesson_that_starts_in_the_evening_ends_after_its_length():
    from detectors.schedule import lesson_end

    assert lesson_end("19:30开始，每次两个半小时") == 22 * 60  # 19:30 + 2.5 h
    assert lesson_end("18:00开始，每次90分钟") == 19 * 60 + 30
    assert lesson_end("晚7:00-9:00") == 21 * 60  # an end given is the end
    assert lesson_end("19:30") == 19 * 60 + 30  # no length: the start
    assert parse_minutes("两个半小时") == 150 and parse_minutes("1个半小时") == 90 and parse_minutes("半小时") == 30
    assert detect("英语阅读班：周四 19:30 开始，每次两个半小时")
    assert not detect("少儿美术课19:00开始，每次一个半小时")  # non-subject
    assert not detect("初二数学课18:00开始，每次两小时")  # ends at 20:00


def test_calendar_months_are_not_numbers_of_months():
    assert months("9月—次年1月") == 5 and months("9月次年1月") == 5  # (the dash may be read as an evasion)
    assert months("3月-5月") == 3 and months("7月10日-8月20日") == 2
    assert months("8月份一次缴清") is None and months("预交6个月") == 6
    assert detect("秋季学期课程（9月—次年1月）学费一次缴清")
    assert not detect("春季班（3月—5月）学费一次缴清")
