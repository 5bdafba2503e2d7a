"""Quality heuristics drop broken teacher output with the right reason and keep clean tickets."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest

from filters.base import KEEP
from filters.heuristics import (
    HEURISTICS, Language, Length, Pii, Refusal, Repetition, TemplateLeftover, build_heuristics,
    run_chain,
)

REPO = Path(__file__).resolve().parents[1]
BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "train.csv"
FIELDS = ["subject", "body", "reply"]

# Realistic support text that every heuristic must keep: prices, order and tracking numbers,
# dates, times, versions, a 16-digit number failing Luhn, apostrophes and exclamation marks.
CLEAN = [
    "Hi, I was charged $9.99 twice on March 3 for order LM-20301187. Can you refund one?",
    "The app crashed again at 10:30 this morning after updating to v5.2.0. It's the third "
    "time this week!",
    "My package with tracking number 1Z999AA10123456784 hasn't moved since 2024-03-15.",
    "Your gift card code 1234 5678 9012 3456 doesn't work at checkout, what's wrong?",
    "Thanks so much! The replacement arrived on Friday and works perfectly!!",
    "I'm sorry, but I can't find the invoice for my January renewal of $119.00 anywhere.",
    "We've refunded the extra $9.99; it usually shows on your card within 5-7 business days.",
    "Please update my shipping address to 42 Elm Street, Springfield before 5pm today.",
    "Sure, I'll send the screenshot. The error says \"Hi {{ user.first_name }}\" on top.",
    "Here's an example of the error: the light blinks red three times, then turns off.",
    "Our store was down from 9:00 to 11:45 and we lost about 15% of Saturday's sales.",
    "I called on 03/04/2024 and the agent gave me reference 4412-889 but nobody followed up.",
    "Please contact support@lumio.example if the reset link expires again.",
    "Ticket #55821: card ending ************4242 declined at 14:05 on 2/7, balance is $1,250.",
    "Firmware 4.1.8 on Cam 2 drops offline every night around 2am, router has 3 nodes.",
    "I ordered the Crème Brûlée set from Pâtisserie Dupont but got the wrong box.",
]


def chain_for(text: str, **config):
    return run_chain(build_heuristics({"fields": ["text"], **config}), {"text": text})


def banking77(limit: int = 2000) -> list[str]:
    assert BANKING77.exists(), f"shared data missing: {BANKING77}"
    with BANKING77.open(newline="", encoding="utf-8") as handle:
        rows = [row["text"] for _, row in zip(range(limit), csv.DictReader(handle))]
    assert len(rows) == limit
    return rows


@pytest.mark.parametrize("text", CLEAN)
def test_clean_support_text_passes_every_heuristic(text):
    assert chain_for(text) == KEEP


def test_seed_tickets_pass_the_default_chain():
    chain = build_heuristics({"fields": FIELDS})
    seeds = (REPO / "configs" / "tasks" / "support-tickets.seeds.jsonl").read_text().splitlines()
    dropped = [(r["id"], d) for r in map(json.loads, seeds) if not (d := run_chain(chain, r)).keep]
    assert len(seeds) >= 10 and dropped == []


# ------------------------------------------------------------------------------------- length

def test_length_bounds_in_chars_and_words():
    check = Length({"subject": (5, 20), "body": {"min_words": 4, "max_words": 6}})
    four = "one two three four"
    assert check({"subject": "Refund", "body": four}) == KEEP
    assert check({"subject": "Hi", "body": four}).detail == "subject: 2 chars < min 5"
    assert check({"subject": "x" * 21, "body": "a b c d"}).detail == "subject: 21 chars > max 20"
    assert check({"subject": "Refund", "body": "too short"}).detail == "body: 2 words < min 4"
    long_body = {"subject": "Refund", "body": "a b c d e f g"}
    assert check(long_body).reason == "length" and "7 words > max 6" in check(long_body).detail


def test_length_skips_absent_and_non_string_fields():
    assert Length({"body": {"min_words": 3}})({"subject": "x", "body": None}) == KEEP


@pytest.mark.parametrize("spec", [
    {"body": (1, 2, 3)}, {"body": {"min_word": 3}}, {"body": {"min_words": -1}},
    {"body": {"min_chars": 10, "max_chars": 5}}, {"body": "8 words"}, {},
])
def test_length_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match="length"):
        Length(spec)


# ------------------------------------------------------------------------------------ refusal

@pytest.mark.parametrize("text", [
    "As an AI language model, I cannot write a support ticket about this.",
    "I'm sorry, but I can't assist with that request.",
    "I cannot help with that.",
    "I’m sorry, but I can’t help with this.",
    "As an AI, I don't have access to your order history.",
    "I'm just an AI and cannot process refunds.",
    "Sure! Here is a ticket:\nMy card was charged twice.",
    "Certainly! Here's a realistic support ticket:",
    "Here's an example",
    "Below is a sample JSON record for a billing issue.",
    "The charge was refunded.\n\nLet me know if you'd like another ticket in a different tone.",
    "I must respectfully decline to write that.",
])
def test_refusal_drops(text):
    decision = Refusal(["reply"])({"reply": text})
    assert decision.reason == "refusal" and decision.detail.startswith("reply: ")


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't refund an order after 90 days; I can offer store credit instead.",
    "As an AI startup, we rely on your API for every customer export.",
    "I am an AI researcher and my training data upload keeps failing.",
    "Here is your ticket number: 55821. Let me know if you need anything else!",
    "Certainly! I'll look into the double charge right away.",
    "I can't log in since the update, it says my password is wrong.",
])
def test_refusal_keeps_agent_and_customer_phrasing(text):
    assert Refusal(["reply"])({"reply": text}) == KEEP


# --------------------------------------------------------------------------------- repetition

@pytest.mark.parametrize("text,found", [
    ("Please help me.\nPlease help me.\nPlease help me.", "line/sentence x3"),
    ("Thank you for waiting. Thank you for waiting. Thank you for waiting.", "x3"),
    ("the card is blocked and " * 6, "3-gram"),
    ("I NEED HELP NOW!!!!!!!!!!", "character run"),
    ("Hellooooooooooo is anyone there", "character run"),
])
def test_repetition_drops(text, found):
    decision = Repetition(["body"])({"body": text})
    assert decision.reason == "repetition" and found in decision.detail


@pytest.mark.parametrize("text", [
    "I have a card and I have a phone, but the card is not linked to the phone.",
    "Thanks!\nThanks!\nThanks!",  # lines of one or two words are exempt
    "Guest: hi\nGuest: hi\nGuest: hi\nAgent: Hello, how can I help?",
    "Card number ****************4242 and XXXX-XXXX-XXXX-1234 are both masked.",
    "Order summary\n--------------------\nItem: Cam 2\n--------------------\nTotal: $59.99",
    "The app crashed. I restarted it. The app crashed again. I reinstalled it.",
])
def test_repetition_keeps_natural_text(text):
    assert Repetition(["body"])({"body": text}) == KEEP


# -------------------------------------------------------------------------- template_leftover

@pytest.mark.parametrize("text", [
    "Hi {{ customer_name }}, thanks for reaching out.",
    "{% if refund %}We refunded you.{% endif %}",
    "<|im_start|>assistant\nYour refund is on its way.",
    "Your order shipped.<|eot_id|>",
    "[INST] Write a ticket [/INST] My order is late.",
    "Best regards,\n[Your Name]",
    "Dear [Customer Name], your order [Order Number] shipped.",
    "Hi [Name], thanks for your patience.",
    "Your refund will arrive on <insert date>.",
    "Hello {name}, we are on it.",
    "Sincerely,\n<AGENT_NAME>",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
])
def test_template_leftover_drops(text):
    assert TemplateLeftover(["reply"])({"reply": text}).reason == "template_leftover"


@pytest.mark.parametrize("text", [
    "[URGENT] Can't log in after the v5.2.0 update",
    "[Chat started 21:14]\nGuest: hi",
    "The page shows <br> and <div> tags and a price of $9.99 instead of the total.",
    "See the [link](https://help.lumio.example/reset) in the FAQ.",
    'The greeting says "Good morning, {{ user.first_name }}!" instead of my name.',
    "The email literally says `Dear [Customer Name]` at the top.",
])
def test_template_leftover_keeps_normal_and_quoted_text(text):
    assert TemplateLeftover(["reply"])({"reply": text}) == KEEP


def test_special_tokens_are_dropped_even_in_quotes():
    text = 'It said "<|im_end|>" at the end.'
    assert TemplateLeftover(["reply"])({"reply": text}).reason == "template_leftover"


# ----------------------------------------------------------------------------------- language

FOREIGN = [
    "Ich warte seit zwei Wochen auf meine neue Karte, wann kommt sie endlich an?",
    "Hallo, ich habe mein Passwort vergessen und kann mich nicht mehr anmelden.",
    "Bonjour, je n'ai toujours pas reçu ma carte, pouvez-vous m'aider ?",
    "Mon paiement a été refusé alors que j'ai assez d'argent sur mon compte.",
    "Hola, todavía no he recibido mi tarjeta, ¿me pueden ayudar por favor?",
    "No puedo iniciar sesión en mi cuenta desde ayer.",
    "Me cobraron dos veces el mismo pedido y quiero un reembolso.",
    "我的银行卡还没有收到，请问什么时候能到？",
    "Моя карта до сих пор не пришла, помогите пожалуйста.",
]


@pytest.mark.parametrize("text", FOREIGN)
def test_language_drops_other_languages(text):
    decision = Language(["body"])({"body": text})
    assert decision.reason == "language" and decision.detail.startswith("body: ")


@pytest.mark.parametrize("text", [
    "Card payment reverted?",  # too short to judge
    "Error 0x80070005 during Windows 11 setup.exe install",
    "Hola Cafe on Calle del Sol charged me twice for one latte.",
    "Zoë from the Köln store said the refund of €20 would take 3 days.",
])
def test_language_keeps_terse_or_name_heavy_english(text):
    assert Language(["body"])({"body": text}) == KEEP


def test_language_only_supports_english():
    with pytest.raises(ValueError, match="only 'en'"):
        Language(["body"], expected="de")


def test_language_keeps_real_short_english_queries():
    texts = banking77()
    check = Language(["text"])
    dropped = [t for t in texts if not check({"text": t}).keep]
    print(f"language: kept {1 - len(dropped) / len(texts):.2%} of banking77; dropped {dropped}")
    assert len(dropped) <= 0.005 * len(texts)


# ---------------------------------------------------------------------------------------- pii

@pytest.mark.parametrize("text,kind", [
    ("Reach me at jane.doe@gmail.com anytime.", "email"),
    ("Call me on +44 20 7946 0958 after six.", "phone"),
    ("My number is +1 (555) 123-4567.", "phone"),
    ("Call (555) 123-4567 please.", "phone"),
    ("Call 555-123-4567 please.", "phone"),
    ("Call 555.123.4567 please.", "phone"),
    ("Our line: 1-800-555-0199.", "phone"),
    ("My card 4111 1111 1111 1111 was declined.", "card"),
    ("Card 4111-1111-1111-1111 expired.", "card"),
    ("Charged on 5500005555555559 twice.", "card"),
    ("Amex 378282246310005 was rejected.", "card"),
])
def test_pii_drops(text, kind):
    decision = Pii(["body"])({"body": text})
    assert decision.reason == "pii" and kind in decision.detail
    assert not any(ch.isdigit() for ch in decision.detail.split("(")[0])  # value not echoed


@pytest.mark.parametrize("text", [
    "Order LM-20301187 arrived broken.",
    "It cost $1,299.99 on March 3 at 10:30.",
    "Account 1234567812345678 shows the wrong balance.",  # 16 digits, fails Luhn
    "Tracking 1Z999AA10123456784 stuck since 2024-03-15.",
    "Version v5.2.0 build 20240315 crashes; IP 192.168.1.20.",
    "Prices went up +15% from 2023 to 2024.",
    "Write to noreply@lumio.example or support@lumio.com for help.",
    "@LumioSupport still waiting!",
])
def test_pii_keeps_ids_prices_dates(text):
    assert Pii(["body"])({"body": text}) == KEEP


def test_non_luhn_card_lookalike_is_not_a_card():
    assert Pii(["body"])({"body": "4111 1111 1111 1112"}) == KEEP
    assert Pii(["body"])({"body": "4111 1111 1111 1111"}).reason == "pii"


# ------------------------------------------------------------------------- registry and chain

def test_registry_order_names_and_why():
    assert list(HEURISTICS) == ["length", "refusal", "repetition", "template_leftover",
                                "language", "pii"]
    for name, cls in HEURISTICS.items():
        assert cls.name == name and 20 <= len(cls.why) <= 120 and "\n" not in cls.why


def test_build_defaults_and_options():
    names = [h.name for h in build_heuristics({"fields": FIELDS})]
    assert names == ["refusal", "repetition", "template_leftover", "language", "pii"]
    chain = build_heuristics({"fields": FIELDS, "length": {"body": {"min_words": 8}},
                              "language": "en", "disable": ["pii"]})
    assert [h.name for h in chain] == ["length", "refusal", "repetition", "template_leftover",
                                       "language"]
    assert all(h.fields == FIELDS for h in chain[1:]) and chain[0].fields == ["body"]
    no_length = build_heuristics({"fields": FIELDS, "length": {"body": (1, 9)},
                                  "disable": ["length"]})
    assert "length" not in [h.name for h in no_length]


@pytest.mark.parametrize("config,match", [
    ({"fields": FIELDS, "disable": ["profanity"]}, "unknown heuristic"),
    ({"fields": FIELDS, "disable": "pii"}, "disable"),
    ({"fields": FIELDS, "lenght": {}}, "unknown key"),
    ({"fields": []}, "fields"),
    ({"fields": "body"}, "fields"),
    ({}, "fields"),
    ({"fields": FIELDS, "length": {"summary": (1, 5)}}, "length"),
    ({"fields": FIELDS, "length": {"body": {"min": 3}}}, "length"),
    ({"fields": FIELDS, "language": "fr"}, "only 'en'"),
])
def test_build_rejects_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        build_heuristics(config)


def test_first_drop_wins_in_cheap_first_order():
    chain = build_heuristics({"fields": FIELDS, "length": {"body": {"min_words": 20}}})
    record = {"subject": "Help", "body": "As an AI language model, I cannot.", "reply": "ok"}
    assert run_chain(chain, record).reason == "length"
    record["body"] = "As an AI language model, I cannot help. [Your Name]\n" * 3
    assert run_chain(chain, record).reason == "refusal"
    assert run_chain(chain[2:], record).reason == "repetition"
    assert run_chain([], record) == KEEP


def test_field_order_decides_which_field_is_named():
    check = Pii(["subject", "body"])
    decision = check({"body": "mail a@b.io", "subject": "call +1 (555) 123-4567"})
    assert decision.detail == "subject: phone number"


def test_default_chain_keeps_banking77():
    texts = banking77()
    chain = build_heuristics({"fields": ["text"]})
    dropped = [(t, d) for t in texts if not (d := run_chain(chain, {"text": t})).keep]
    print(f"default chain: kept {1 - len(dropped) / len(texts):.2%} of banking77; {dropped}")
    assert len(dropped) <= 0.01 * len(texts)


def test_filters_package_does_not_import_factory():
    tree = ast.parse((REPO / "filters" / "heuristics.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.split(".")[0] == "factory"]
