"""The PII guard: each detector with its hard negatives, numbering, restore and the corpus."""

from __future__ import annotations

import re

import pytest

from bench.pii import ALL, CORPUS, load_corpus, score
from resolvers.guard.pii import Finding, Kind, Masked, anonymise, anonymise_many, detect
from resolvers.guard.pii_number import id_check_char, is_cn_id, luhn_ok
from resolvers.guard.pii_span import fold_width

# Synthetic values: the GB 11643 example ID, issuers' published test card numbers, example.com,
# Ofcom's drama phone ranges and the documentation IP ranges.
ID_X = "11010519491231002X"
ID_3 = "310104198511120013"
VISA = "4111111111111111"
UNIONPAY_19 = "6222021234567890128"
RESERVED_DOMAIN = re.compile(r"@(?:[a-z0-9-]+\.)*example\.(?:com|org|net)\Z")  # RFC 2606


def found(text: str) -> list[tuple[str, str]]:
    return [(str(span.kind), text[span.start : span.end]) for span in detect(text)]


def only(kind: Kind, text: str) -> list[str]:
    return [value for k, value in found(text) if k == kind]


# Detectors: positives


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mail john.doe@example.com today", "john.doe@example.com"),
        ("请发到zhangsan@example.com，谢谢", "zhangsan@example.com"),
        ("Reply to <team+ops@mail.example.co.uk>.", "team+ops@mail.example.co.uk"),
        ("全角：ｌｉｕ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｌｉｕ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
    ],
)
def test_emails_are_found(text: str, value: str) -> None:
    assert only(Kind.EMAIL, text) == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("手机13800138000", "13800138000"),
        ("电话：138-0013-8000。", "138-0013-8000"),
        ("请拨打+86 186 1234 5678咨询", "+86 186 1234 5678"),
        ("海外拨0086-13712345678", "0086-13712345678"),
        ("(+86)13512345678 微信同号", "(+86)13512345678"),
        ("手机：１３８００１３８０００", "１３８００１３８０００"),
        ("办公室010-62345678", "010-62345678"),
        ("Call me at +1 415-555-0132 tomorrow.", "+1 415-555-0132"),
        ("Office (212) 555-0147.", "(212) 555-0147"),
        ("UK office: 020 7946 0958, ask", "020 7946 0958"),
        ("Berlin +49 30 901820.", "+49 30 901820"),
        ("tel: 6465550188", "6465550188"),
        ("My number is 4155550123, text me.", "4155550123"),
    ],
)
def test_phones_are_found(text: str, value: str) -> None:
    assert only(Kind.PHONE, text) == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"身份证号：{ID_X}", ID_X),
        (f"ID {ID_X.lower()} ok", ID_X.lower()),
        (f"ID {ID_3}.", ID_3),
        ("证件 310104 19851112 0013 已核验", "310104 19851112 0013"),
        ("身份证：３１０１０４１９８５１１１２００１３", "３１０１０４１９８５１１１２００１３"),
    ],
)
def test_resident_ids_are_found(text: str, value: str) -> None:
    assert only(Kind.CN_ID, text) == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"card {VISA}, exp 12/27", VISA),
        ("card 4111 1111 1111 1111 12/27", "4111 1111 1111 1111"),
        ("pay 5500-0000-0000-0004 now", "5500-0000-0000-0004"),
        ("Amex 3782 822463 10005 on file", "3782 822463 10005"),
        (f"工资卡号：{UNIONPAY_19}", UNIONPAY_19),
        ("卡号 6222 0212 3456 7890 128 请转账", "6222 0212 3456 7890 128"),
    ],
)
def test_bank_cards_are_found(text: str, value: str) -> None:
    assert only(Kind.BANK_CARD, text) == [value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("The server is at 10.0.0.1 on the VPN.", "10.0.0.1"),
        ("来自203.0.113.88的请求", "203.0.113.88"),
        ("from 198.51.100.7:8080 dropped", "198.51.100.7"),
        ("IPv6: 2001:db8:85a3::8a2e:370:7334.", "2001:db8:85a3::8a2e:370:7334"),
        ("地址：2001:db8::1", "2001:db8::1"),
        ("Connect to [2001:db8::42]:443", "2001:db8::42"),
    ],
)
def test_ip_addresses_are_found(text: str, value: str) -> None:
    assert only(Kind.IP, text) == [value]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("Mr. John Smith will join.", ["John Smith"]),
        ("Ask Dr Emily Carter.", ["Emily Carter"]),
        ("Prof. Dr. Hans Müller at noon.", ["Hans Müller"]),
        ("Ms Sarah J. Connor signed.", ["Sarah J. Connor"]),
        ("Mrs. O'Brien sent it.", ["O'Brien"]),
        ("My name is David Miller and", ["David Miller"]),
        ("王伟先生明天到访", ["王伟"]),
        ("张小明老师布置了作业", ["张小明"]),
        ("我叫刘洋，今年二十岁", ["刘洋"]),
        ("联系人：陈静", ["陈静"]),
        ("欧阳娜娜女士是客户", ["欧阳娜娜"]),
        ("向李明老师请教", ["李明"]),
        ("感谢谢娜女士", ["谢娜"]),
        ("联系人：John Smith（英国）", ["John Smith"]),
    ],
)
def test_names_next_to_a_title_or_cue_are_found(text: str, values: list[str]) -> None:
    assert only(Kind.PERSON, text) == values


# Detectors: hard negatives


@pytest.mark.parametrize(
    "text",
    [
        "Order 20240115-0042 ships tomorrow; order number 2125551234 too.",
        "订单号13812345678已发货，快递单号 SF1234567890123。",
        f"Invoice {VISA} is overdue; transaction ID {VISA} settled.",
        "The card 4111 1111 1111 1112 fails Luhn, so does 1234567812345678.",
        "ISBN 978-0-306-40615-7, ISBN-13: 9780306406157",
        "Meeting 2024-03-15 at 10:30, born 03/15/1990, price $1,299.99.",
        "The timestamp 1700000000, zip 94105, bare 2125551234.",
        "Upgrade to version 2.0.1.4; v1.2.3.4; Build 10.0.19045.3803; section 3.2.1.4.",
        "版本 2.0.1.4 已发布，软件版本号v1.2.3.4",
        "Listen on 0.0.0.0:8000, loopback 127.0.0.1 and ::1; IP 256.1.1.1.",
        "std::vector, 12:30:45 and MAC 00:1A:2B:3C:4D:5E",
        "Hotline 95588 and 12306; room 1304",
        "Drive to 42 Maple Dr Springfield; Mr. President; Mr. and Mrs. printed.",
        "很高兴认识你，同学们好！王国的历史很悠久。我想吃李子。",
        "这个周末老师要开会。我是高中生。我们是高中同学。",
        "王先生和李女士已经到了，张老师今天请假。",
        "请向王经理汇报，请于李老师处领取。我是石家庄人。",
        "用户名 user@localhost，@sarah",
        "File name: Report Final; Host name: Alpha. 我是Apple的员工，我是宋朝历史爱好者。",
    ],
)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_a_wrong_check_character_or_birth_date_is_no_id() -> None:
    wrong = ID_X[:-1] + "5"
    born_on_13th_month = "1101051990133012" + "3"
    assert not is_cn_id(wrong) and not is_cn_id(born_on_13th_month)
    assert found(f"身份证号{wrong}，{born_on_13th_month + id_check_char(born_on_13th_month)}") == []


def test_check_digit_helpers_on_published_examples() -> None:
    assert is_cn_id(ID_X) and id_check_char(ID_3[:17]) == "3"
    assert luhn_ok(VISA) and luhn_ok("378282246310005") and not luhn_ok("4111111111111112")


def test_an_id_that_is_also_luhn_valid_is_an_id() -> None:
    shaped = [c for c in (f"11010519900307{n:03d}" for n in range(1000))]
    both = next(
        number + id_check_char(number)
        for number in shaped
        if id_check_char(number) != "X" and luhn_ok(number + id_check_char(number))
    )
    assert found(f"号码 {both}") == [("CN_ID", both)]


def test_an_id_with_a_bad_check_digit_is_not_a_card_either() -> None:
    shaped = (f"44030519900101{n:03d}{d}" for n in range(100) for d in range(10))
    typo = next(n for n in shaped if luhn_ok(n) and not is_cn_id(n))
    assert found(f"身份证号 {typo}") == []


def test_an_email_with_digits_is_one_email_not_a_phone() -> None:
    assert found("QQ邮箱13800138000@example.com") == [("EMAIL", "13800138000@example.com")]


# Masking and numbering


def test_placeholders_are_numbered_per_kind_by_first_occurrence() -> None:
    masked = anonymise(
        "a@example.com, b@example.com, 13800138000, A@EXAMPLE.COM, 10.0.0.1 and 138 0013 8000"
    )
    assert masked.text == ("[EMAIL_1], [EMAIL_2], [PHONE_1], [EMAIL_1], [IP_1] and [PHONE_1]")
    assert masked.found == (
        Finding(Kind.EMAIL, "[EMAIL_1]", 2),
        Finding(Kind.EMAIL, "[EMAIL_2]", 1),
        Finding(Kind.PHONE, "[PHONE_1]", 2),
        Finding(Kind.IP, "[IP_1]", 1),
    )


def test_the_same_number_in_two_formats_shares_a_placeholder() -> None:
    masked = anonymise("Call +86 138 0013 8000 or 13800138000, or 0086-138-0013-8000.")
    assert masked.text == "Call [PHONE_1] or [PHONE_1], or [PHONE_1]."


def test_placeholders_already_in_the_text_are_skipped_and_left_as_written() -> None:
    text = "Template: [EMAIL_1] and [ phone 1 ]; mine is me@example.com, tel 13800138000."
    masked = anonymise(text)
    assert masked.text == ("Template: [EMAIL_1] and [ phone 1 ]; mine is [EMAIL_2], tel [PHONE_2].")
    assert masked.vault.restore(masked.text) == text


def test_nothing_found_leaves_the_text_as_it_is() -> None:
    masked = anonymise("Nothing personal here: 42 apples, version 1.2.3.")
    assert (masked.text, masked.found, len(masked.vault)) == (
        "Nothing personal here: 42 apples, version 1.2.3.",
        (),
        0,
    )


def test_findings_and_reprs_never_show_the_values() -> None:
    secrets = ["me@example.com", "13800138000", ID_X, VISA, "203.0.113.9", "John Smith"]
    masked = anonymise(
        f"{secrets[0]} {secrets[1]} {secrets[2]} card {secrets[3]} {secrets[4]} Mr {secrets[5]}"
    )
    shown = repr(masked) + str(masked.found) + repr(masked.vault)
    assert len(masked.found) == len(secrets)
    assert [s for s in secrets if s in shown or s in masked.text] == []


def test_fields_of_one_request_share_one_numbering() -> None:
    masked = anonymise_many(
        {
            "prompt": "Write to me@example.com and Dr. Jane Doe",
            "notes": "cc you@example.com, me@example.com",
        }
    )
    assert masked.texts == {
        "prompt": "Write to [EMAIL_1] and Dr. [PERSON_1]",
        "notes": "cc [EMAIL_2], [EMAIL_1]",
    }
    assert [f.placeholder for f in masked.found["notes"]] == ["[EMAIL_2]", "[EMAIL_1]"]
    assert masked.vault.restore("[EMAIL_2] [PERSON_1]") == "you@example.com Jane Doe"


# Restore


def sample() -> tuple[str, Masked]:
    text = (
        f"我叫王小明，电话13800138000，邮箱wang@example.com，卡号{VISA}，"
        f"身份证{ID_X}，IP 10.0.0.1，联系人 Mr. John Smith。"
    )
    return text, anonymise(text)


def test_restore_puts_every_value_back() -> None:
    text, masked = sample()
    assert len(masked.found) == 7
    assert masked.vault.restore(masked.text) == text


@pytest.mark.parametrize(
    "altered",
    [
        "[email_1]",
        "[ EMAIL_1 ]",
        "[Email 1]",
        "[E-MAIL_1]",
        "[EMAIL-1]",
        "［ＥＭＡＩＬ＿１］",
        "【EMAIL_1】",
    ],
)
def test_slightly_altered_placeholders_are_restored(altered: str) -> None:
    masked = anonymise("mail me@example.com")
    assert masked.vault.restore(f"Mail: {altered}.") == "Mail: me@example.com."


def test_unknown_placeholders_and_look_alikes_pass_through() -> None:
    masked = anonymise("mail me@example.com")
    text = "[EMAIL_2] [PHONE_1] [click](https://example.com) [EMAIL_] [EMAIL 1x] a[b]c"
    assert masked.vault.restore(text) == text


def test_every_two_way_split_restores_the_same() -> None:
    text, masked = sample()
    output = masked.text.replace("[EMAIL_1]", "[ email_1 ]")
    for cut in range(len(output) + 1):
        stream = masked.vault.stream()
        restored = stream.feed(output[:cut]) + stream.feed(output[cut:]) + stream.flush()
        assert restored == text, cut


def test_character_by_character_and_three_way_splits_restore_the_same() -> None:
    masked = anonymise("Mail me@example.com, Dr. Ann Lee, 10.0.0.1")
    output = masked.text.replace("[PERSON_1]", "【PERSON 1】")
    expected = "Mail me@example.com, Dr. Ann Lee, 10.0.0.1"
    stream = masked.vault.stream()
    assert "".join(stream.feed(char) for char in output) + stream.flush() == expected
    for first in range(len(output) + 1):
        for second in range(first, len(output) + 1):
            stream = masked.vault.stream()
            pieces = (output[:first], output[first:second], output[second:])
            assert "".join(map(stream.feed, pieces)) + stream.flush() == expected


def test_the_stream_holds_back_only_what_may_become_a_placeholder() -> None:
    masked = anonymise("mail me@example.com")
    stream = masked.vault.stream()
    assert stream.feed("Hi [EM") == "Hi "
    assert stream.feed("AIL_1] and [click") == "me@example.com and [click"
    assert stream.feed(" [PERS") == " "
    assert stream.flush() == "[PERS"


def test_the_stream_reports_restored_and_missing_placeholders() -> None:
    masked = anonymise("me@example.com, 13800138000, me@example.com")
    stream = masked.vault.stream()
    stream.feed("[EMAIL_1] wrote twice: [email_1].")
    assert stream.restored == {"[EMAIL_1]": 2}
    assert stream.missing == ("[PHONE_1]",)


def test_a_value_with_backslashes_is_restored_literally() -> None:
    masked = anonymise(r"Mr. John Smith wrote C:\new\1.txt")
    assert masked.vault.restore(masked.text) == r"Mr. John Smith wrote C:\new\1.txt"


# The corpus


def test_the_corpus_is_large_balanced_and_labels_what_it_holds() -> None:
    cases = load_corpus(CORPUS)
    langs = [case.lang for case in cases]
    assert len(cases) >= 220
    assert 0.4 <= langs.count("en") / len(cases) <= 0.6
    assert {kind for case in cases for kind, _ in case.pii} == {str(kind) for kind in Kind}
    assert sum(1 for case in cases if not case.pii) >= 60  # hard negatives
    assert [(case.text, v) for case in cases for _, v in case.pii if v not in case.text] == []
    emails = [fold_width(v).casefold() for c in cases for k, v in c.pii if k == "EMAIL"]
    assert [e for e in emails if not RESERVED_DOMAIN.search(e)] == []


def test_corpus_recall_and_precision() -> None:
    result = score(load_corpus(CORPUS))
    overall = result.tallies[ALL]
    assert overall.recall >= 0.95 and overall.precision >= 0.95, result.missed + result.wrong
    low = {
        kind: (t.recall, t.precision)
        for kind, t in result.tallies.items()
        if t.recall < 0.9 or t.precision < 0.9
    }
    assert low == {}, result.missed + result.wrong


def test_every_corpus_text_round_trips() -> None:
    for case in load_corpus(CORPUS):
        masked = anonymise(case.text)
        assert masked.vault.restore(masked.text) == case.text
