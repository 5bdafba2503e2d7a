"""Quality heuristics: cheap text checks that catch teacher failures a schema cannot see.

Each heuristic is configured with the text fields it reads and is called on a record's fields
(`heuristic(fields) -> Decision`). It returns `KEEP`, or `drop(reason, detail)` where the detail
names the field and what was found, e.g. `drop("refusal", "reply: 'as an AI language model'")`.
Fields that are absent or not strings are skipped: the schema check owns their presence.

Reasons, in the cheap-first order of a chain: `length`, `refusal`, `repetition`,
`template_leftover`, `language`, `pii`.

>>> chain = build_heuristics({"fields": ["subject", "body"], "length": {"body": {"min_words": 3}}})
>>> run_chain(chain, {"subject": "Refund", "body": "As an AI language model, I cannot."}).reason
'refusal'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from filters.base import KEEP, Decision, Filter, drop

__all__ = [
    "HEURISTICS", "Heuristic", "Language", "Length", "Pii", "Refusal", "Repetition",
    "TemplateLeftover", "build_heuristics", "run_chain",
]

_SNIPPET = 40  # longest excerpt of the text quoted in a drop detail


def _quote(text: str) -> str:
    """A short, single-line excerpt of `text` for a drop detail."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _SNIPPET else flat[: _SNIPPET - 3] + "...")


def _check_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str) or not fields or not all(isinstance(f, str) for f in fields):
        raise ValueError(f"fields must be a non-empty list of field names, got {fields!r}")
    return list(fields)


class Heuristic:
    """Base of the text heuristics: reads `self.fields` in order, first finding drops.

    Subclasses set `name` (the drop reason), `why` (one line for docs and the dataset card)
    and implement `find(text) -> str | None`, the short description of what was found.
    """

    name: ClassVar[str] = ""
    why: ClassVar[str] = ""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = _check_fields(fields)

    def __call__(self, fields: dict[str, Any]) -> Decision:
        for key, text in _texts(fields, self.fields):
            found = self.find(text)
            if found:
                return drop(self.name, f"{key}: {found}")
        return KEEP

    def find(self, text: str) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fields!r})"


def _texts(record: Mapping[str, Any], keys: Sequence[str]) -> Iterator[tuple[str, str]]:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str):
            yield key, value


# --------------------------------------------------------------------------------------------
# length
# --------------------------------------------------------------------------------------------

_BOUND_KEYS = ("min_chars", "max_chars", "min_words", "max_words")


def _parse_bounds(field: str, spec: Any) -> dict[str, int]:
    """`(min, max)` in characters, or a dict of `_BOUND_KEYS`; None means unbounded."""
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        spec = {"min_chars": spec[0], "max_chars": spec[1]}
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"length bounds for {field!r} must be (min, max) characters or a "
                         f"dict with keys {', '.join(_BOUND_KEYS)}; got {spec!r}")
    unknown = sorted(set(spec) - set(_BOUND_KEYS))
    if unknown:
        raise ValueError(f"length bounds for {field!r}: unknown key(s) {unknown}; "
                         f"expected {', '.join(_BOUND_KEYS)}")
    bounds = {k: v for k, v in spec.items() if v is not None}
    for key, value in bounds.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"length bounds for {field!r}: {key} must be an int >= 0, "
                             f"got {value!r}")
    for unit in ("chars", "words"):
        low, high = bounds.get(f"min_{unit}", 0), bounds.get(f"max_{unit}")
        if high is not None and low > high:
            raise ValueError(f"length bounds for {field!r}: min_{unit} {low} > max_{unit} {high}")
    return bounds


class Length:
    """Per-field bounds in characters and/or words (whitespace-separated); reason `length`.

    Reads the fields named in `bounds`. Detail: `"body: 5 words < min 8"`.

    >>> Length({"body": {"min_words": 3}, "subject": (1, 80)})({"body": "Too short"}).detail
    'body: 2 words < min 3'
    """

    name: ClassVar[str] = "length"
    # Schema bounds are loose nets; one-line bodies and essay replies need tighter, word bounds.
    why: ClassVar[str] = ("per-field character/word bounds tighter than the schema, for "
                          "one-liners and rambling answers")

    def __init__(self, bounds: Mapping[str, Any]) -> None:
        if not isinstance(bounds, Mapping) or not bounds:
            raise ValueError(f"length needs a dict field -> bounds, got {bounds!r}")
        self.bounds = {_check_fields([f])[0]: _parse_bounds(f, s) for f, s in bounds.items()}
        self.fields = list(self.bounds)

    def __call__(self, fields: dict[str, Any]) -> Decision:
        for key, text in _texts(fields, self.fields):
            sizes = {"chars": len(text.strip()), "words": len(text.split())}
            for unit, size in sizes.items():
                low, high = self.bounds[key].get(f"min_{unit}"), self.bounds[key].get(f"max_{unit}")
                if low is not None and size < low:
                    return drop(self.name, f"{key}: {size} {unit} < min {low}")
                if high is not None and size > high:
                    return drop(self.name, f"{key}: {size} {unit} > max {high}")
        return KEEP

    def __repr__(self) -> str:
        return f"Length({self.bounds!r})"


# --------------------------------------------------------------------------------------------
# refusal
# --------------------------------------------------------------------------------------------

_HELP_VERB = r"(?:help|assist|comply|fulfil+|do that|generate|create|write|provide that)"
_REFUSAL_PATTERNS = [
    # The model naming itself: a support customer or agent never says "as an AI language model".
    r"\bas an? (?:ai|artificial intelligence)(?: (?:language )?model| assistant| chatbot)?"
    r",? (?:i|my)\b",
    r"\bas an? (?:ai |large )?language model\b",
    r"\bi(?:'m| am) (?:just |only )?an? (?:ai(?: assistant| model)?|(?:large )?language model|"
    r"chatbot)(?=\s*(?:[,.;!]|$|and\b|so\b|that\b|without\b|trained\b))",
    r"\bmy knowledge cutoff\b",
    # Refusals aimed at the request ("that"), so "I'm sorry, but I can't refund it" still passes.
    r"\bi (?:can(?:no|')t|can not|am unable to|won't|will not|am not able to) " + _HELP_VERB
    + r"(?: (?:you )?with)? (?:that|this|your request|such requests?)"
    r"(?: request| content| task)?\s*(?:[.!]|$)",
    r"\bi(?:'m| am) sorry,? but i (?:can(?:no|')t|can not|am unable to|won't) " + _HELP_VERB
    + r"\b(?! you with your)",
    r"\b(?:i must|i have to) (?:respectfully )?decline\b",
    # Chatbot self-talk framing the record, at the start of a line: "Sure! Here is a ticket:".
    r"(?:^|\n)\s*(?:(?:sure|certainly|of course|absolutely|okay|ok|great)\b[!,.]*\s*)?"
    r"(?:here(?:'s| is| are)|below is|below are) (?:a |an |the |one |some |your )?"
    r"(?:(?:realistic|sample|synthetic|fictional|fictitious|possible|new|generated|example|"
    r"short|detailed|customer|support|json)\s+){0,3}"
    r"(?:tickets?|examples?|records?|samples?|json|entry|entries|responses?|outputs?)"
    r"(?=\s*(?::|$|[.!]\s*$|\bof an?\b|\bfor (?:a|an|the|you)\b|\bin json\b|\bbased on\b))",
    r"\blet me know if you(?:'d| would) like (?:me to )?(?:another|more|a different|any "
    r"changes|to adjust)\b.*\b(?:ticket|example|record|version)s?\b",
    r"\bfeel free to (?:adjust|modify|customi[sz]e|tweak) (?:this|the) (?:ticket|example|"
    r"record|template|response)\b",
]
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_PATTERNS), re.IGNORECASE)


class Refusal(Heuristic):
    """Refusals, AI self-reference and chatbot self-talk; reason `refusal`.

    Reads `fields`. Detail: the field and the matched phrase.

    >>> Refusal(["reply"])({"reply": "As an AI language model, I cannot do that."}).reason
    'refusal'
    """

    name = "refusal"
    why = ("teacher refusals, 'as an AI' boilerplate and 'Sure! Here is a ticket:' self-talk "
           "are not data")

    def find(self, text: str) -> str | None:
        match = _REFUSAL_RE.search(text.replace("\u2019", "'"))
        return _quote(match.group().strip()) if match else None


# --------------------------------------------------------------------------------------------
# repetition
# --------------------------------------------------------------------------------------------

# 10 same characters is a loop ("!!!!!!!!!!"); masks/rules ("****1234", "-----") need 40.
_RUN_RE = re.compile(r"([^\s*xX#•\-=_~])\1{9,}|([*xX#•\-=_~])\2{39,}")
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_SENTENCE_RE = re.compile(r"[.!?\n]+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower().replace("\u2019", "'"))


class Repetition(Heuristic):
    """Loops: a repeated line or sentence, a dominant word n-gram, a character run.

    Reads `fields`; reason `repetition`. A field is dropped when a line or a sentence of >= 3
    words occurs `max_repeats` (3) times or more, when one word `ngram` (3-gram) occurs >= 3
    times and makes up more than `max_ngram_share` (0.15) of all its n-grams, or when a
    character repeats 10 times in a row.

    >>> Repetition(["body"])({"body": "Please help me. " * 3}).detail
    "body: line/sentence x3: 'please help me'"
    """

    name = "repetition"
    why = ("degenerate decoding loops (repeated lines, phrases or characters) make "
           "unnatural, low-information records")

    def __init__(self, fields: Sequence[str], ngram: int = 3, max_ngram_share: float = 0.15,
                 max_repeats: int = 3) -> None:
        super().__init__(fields)
        self.ngram, self.max_ngram_share, self.max_repeats = ngram, max_ngram_share, max_repeats

    def find(self, text: str) -> str | None:
        return self._run(text) or self._units(text) or self._ngrams(_words(text))

    @staticmethod
    def _run(text: str) -> str | None:
        match = _RUN_RE.search(text)
        return f"character run {_quote(match.group())}" if match else None

    def _units(self, text: str) -> str | None:
        # People do not write the same 3+ word line or sentence three times; loops do.
        for units in (text.splitlines(), _SENTENCE_RE.split(text)):
            counts = Counter(u for u in (" ".join(_words(u)) for u in units) if u.count(" ") >= 2)
            unit, count = counts.most_common(1)[0] if counts else ("", 0)
            if count >= self.max_repeats:
                return f"line/sentence x{count}: {_quote(unit)}"
        return None

    def _ngrams(self, words: list[str]) -> str | None:
        # Prose's top 3-gram is a few % of all; a loop of cycle c words makes it ~1/c (> 15%).
        grams = Counter(zip(*(words[i:] for i in range(self.ngram))))
        if not grams:
            return None
        gram, count = grams.most_common(1)[0]
        share = count / sum(grams.values())
        if count >= 3 and share > self.max_ngram_share:
            return f"{self.ngram}-gram {' '.join(gram)!r} is {share:.0%} of {self.ngram}-grams"
        return None


# --------------------------------------------------------------------------------------------
# template_leftover
# --------------------------------------------------------------------------------------------

# Words that mark a bracketed span as a fill-in slot ("[Your Name]", "<customer_name>").
_SLOT = (r"(?:name|your|insert|placeholder|company|customer|agent|number|date|email|phone|"
         r"address|amount|product|link|url|signature|order|account|id)")
_SLOT_WORDS = rf"(?:[A-Za-z]+[ _-])*{_SLOT}(?:[ _-][A-Za-z]+)*"
# Chat-format special tokens: the teacher emitted its own turn markup, which no text quotes.
_TOKEN_RE = re.compile(
    r"<\|[A-Za-z0-9_]+\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>|</?(?:bos|eos)>"
)
_TEMPLATE_PATTERNS = [
    # Jinja/Mustache delimiters never occur in prose; they mean a prompt leaked into the output.
    r"\{\{|\}\}|\{%|%\}",
    # Unfilled slots the teacher copied from a letter template ("[Your Name]", "<insert date>").
    rf"\[\s*{_SLOT_WORDS}\s*\](?!\()",
    rf"\{{\s*{_SLOT_WORDS}\s*\}}",
    r"<\s*(?:insert|enter|add|your)\b[^<>\n]{0,40}>",
    rf"<\s*(?:[A-Za-z]+[ _])+{_SLOT}\s*>|<\s*{_SLOT}(?:[ _][A-Za-z]+)+\s*>|(?-i:<[A-Z_]{{3,}}>)",
    # Filler text means the teacher wrote a mock-up, not a record.
    r"\blorem ipsum\b",
]
_TEMPLATE_RE = re.compile("|".join(f"(?:{p})" for p in _TEMPLATE_PATTERNS), re.IGNORECASE)
# A customer may quote broken text ('the app says "Hi {{ user.first_name }}"'): quotes are exempt.
_QUOTED_RE = re.compile(r'"[^"\n]{0,200}"|\u201c[^\u201d\n]{0,200}\u201d|`[^`\n]{0,200}`')


class TemplateLeftover(Heuristic):
    """Template syntax, chat special tokens, unfilled placeholders, Lorem ipsum.

    Reads `fields`; reason `template_leftover`. Detail: the field and the leftover. Text
    between double quotes or backticks is exempt, except for chat special tokens.

    >>> TemplateLeftover(["reply"])({"reply": "Best regards, [Your Name]"}).detail
    "reply: '[Your Name]'"
    """

    name = "template_leftover"
    why = ("unfilled '[Your Name]' slots, '{{ }}' syntax and chat special tokens leak the "
           "prompt or template into the data")

    def find(self, text: str) -> str | None:
        match = _TOKEN_RE.search(text) or _TEMPLATE_RE.search(_QUOTED_RE.sub(" ", text))
        return _quote(match.group()) if match else None


# --------------------------------------------------------------------------------------------
# language
# --------------------------------------------------------------------------------------------

_ENGLISH_FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every all both either neither no such other
another same own i me my mine myself you your yours yourself we us our ours he him his she
her it its they them their what which who whom whose when where why how whether is am are
was were be been being have has had do does did done will would shall should can could may
might must not and or but nor if then than so because as until while though although since
unless of at by for with about against between into through during before after above
below to from up down in out on off over under again once here there only very just also
too still yet already ever never now more most much many few less anything something nothing
everything anyone someone everyone please get got i'm i've i'd i'll you're you've you'll
it's that's there's what's don't doesn't didn't can't cannot won't isn't aren't wasn't
haven't hasn't hadn't wouldn't couldn't shouldn't let's im dont cant didnt doesnt ive
""".split())


# de/fr/es/it/pt glue words, none English: they settle Spanish "no he recibido" ("no", "he").
_FOREIGN_FUNCTION_WORDS = frozenset("""
der die das und ist nicht ich mein meine meinen sie wir mit auf für bitte noch ein eine einen
zu den dem von es wurde habe kann wie le la les et est je ne pas mon ma mes pour vous une des
du que qui avec sur mais bonjour merci été j'ai n'ai il elle nous sont el los las y mi por para
una con pero todavía hola gracias del se lo su muy está di che non è sono mio ho o os não meu
minha com um ainda você obrigado en de al como cuando este esta más desde dass aber oder
sich mich mir auch au aux dans ce cette ou
""".split())


class Language(Heuristic):
    """Text in another language than the expected one (only "en" is supported); `language`.

    Reads `fields`. A field with >= `min_letters` (8) letters is dropped when fewer than
    `min_ascii` (80%) of them are ASCII. A field with >= `min_words` (6) words is dropped when
    fewer than `min_function_share` (10%) of them are common English function words, or when
    it has more (and >= 2) common German/French/Spanish/Italian/Portuguese function words than
    English ones. Shorter fields pass: a three-word subject is too little evidence.

    >>> Language(["body"])({"body": "Meine Karte ist noch nicht angekommen, bitte helfen Sie."})
    Decision(keep=False, reason='language', detail='body: 0/9 words are English function words')
    """

    name = "language"
    why = ("answers in the wrong language (a teacher drifting into its prompt's or a seed's "
           "language) are off-task")

    def __init__(self, fields: Sequence[str], expected: str = "en", min_letters: int = 8,
                 min_ascii: float = 0.8, min_words: int = 6,
                 min_function_share: float = 0.1) -> None:
        super().__init__(fields)
        if expected != "en":
            raise ValueError(f"language: only 'en' can be checked, got {expected!r}; "
                             "put 'language' in disable for datasets in other languages")
        self.expected, self.min_letters, self.min_ascii = expected, min_letters, min_ascii
        self.min_words, self.min_function_share = min_words, min_function_share

    def find(self, text: str) -> str | None:
        # English letters are ~all ASCII ("café" costs a few %); Cyrillic or CJK text has none.
        letters = [c for c in text if c.isalpha()]
        ascii_letters = sum(c.isascii() for c in letters)
        if len(letters) >= self.min_letters and ascii_letters < self.min_ascii * len(letters):
            return f"{ascii_letters}/{len(letters)} letters are ASCII"
        words = [w for w in _words(text) if not w.isdigit()]
        if len(words) < self.min_words:
            return None
        english = sum(w in _ENGLISH_FUNCTION_WORDS for w in words)
        foreign = sum(w in _FOREIGN_FUNCTION_WORDS for w in words)
        # Terse English is >= 12% function words (banking77 minimum), other languages ~0-5%.
        if english < self.min_function_share * len(words):
            return f"{english}/{len(words)} words are English function words"
        # More foreign than English glue words: foreign prose, not English naming "Calle del Sol".
        if foreign >= 2 and foreign > english:
            return f"{foreign} foreign vs {english} English function words"
        return None


# --------------------------------------------------------------------------------------------
# pii
# --------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE_RE = re.compile(
    # International: "+44 20 7946 0958", "+1 (555) 123-4567", "+4915112345678".
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,5}(?![\w-])"
    # North American: "(555) 123-4567", "555-123-4567", "555.123.4567", "1-800-555-0199".
    r"|(?<![\w-])(?:1[-. ])?"
    r"(?:\(\d{3}\)\s?\d{3}[-.\s]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4})(?![\w-])"
)
# Digit groups joined by single spaces or dashes, not glued to letters ("LM-20301187").
_DIGITS_RE = re.compile(r"(?<![\w-])\d+(?:[ -]\d+)*(?![\w-])")


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (random numbers: 1 in 10)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# Shared role mailboxes ("noreply@", "support@") name a company, not a person.
_ROLE_MAILBOXES = frozenset("""
noreply no-reply donotreply do-not-reply support help helpdesk info billing sales privacy
security abuse admin contact hello team service care feedback accounts orders returns press
legal notifications
""".split())


def _email(text: str) -> str | None:
    for match in _EMAIL_RE.finditer(text):
        if match.group().split("@")[0].lower() not in _ROLE_MAILBOXES:
            return "email address"
    return None


# Card numbers are 13-19 digits passing Luhn, which rejects 9 in 10 other long ids.
def _card(text: str) -> str | None:
    for match in _DIGITS_RE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn_ok(digits):
            return f"card number ({len(digits)} digits, Luhn-valid)"
    return None


def _phone(text: str) -> str | None:
    for match in _PHONE_RE.finditer(text):
        if 8 <= sum(c.isdigit() for c in match.group()) <= 15:
            return "phone number"
    return None


class Pii(Heuristic):
    """Emails, phone numbers and Luhn-valid card numbers; reason `pii`.

    Reads `fields`. Order numbers, prices, dates, times, versions and numbers that fail the
    Luhn check pass. The detail names the kind of PII, never the value itself.

    >>> Pii(["body"])({"body": "Reach me at jane.doe@mail.com"}).detail
    'body: email address'
    """

    name = "pii"
    why = ("emails, phone numbers and card numbers must not be memorised or echoed by the "
           "student model")

    def find(self, text: str) -> str | None:
        return _email(text) or _phone(text) or _card(text)


# --------------------------------------------------------------------------------------------
# registry and chain
# --------------------------------------------------------------------------------------------

HEURISTICS: dict[str, type[Length] | type[Heuristic]] = {
    cls.name: cls for cls in (Length, Refusal, Repetition, TemplateLeftover, Language, Pii)
}
_CONFIG_KEYS = ("fields", "length", "language", "disable")


def build_heuristics(config: Mapping[str, Any]) -> list[Filter]:
    """The configured chain, cheap checks first (the order of `HEURISTICS`).

    `config`: `fields` (required, text fields to check), `length` (optional dict field ->
    bounds, see `Length`; the only heuristic off unless configured), `language` (expected
    language, default "en"), `disable` (heuristic names to leave out). Raises ValueError on an
    unknown key, heuristic name or field spec.

    >>> [h.name for h in build_heuristics({"fields": ["body"], "disable": ["pii"]})]
    ['refusal', 'repetition', 'template_leftover', 'language']
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"heuristics config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"heuristics config: unknown key(s) {unknown}; "
                         f"expected {', '.join(_CONFIG_KEYS)}")
    fields = _check_fields(config.get("fields") or [])
    disabled = _disabled(config.get("disable") or [])
    chain: list[Filter] = []
    for name, cls in HEURISTICS.items():
        if name in disabled:
            continue
        if name == "length":
            chain += _length(config.get("length"), fields)
        elif name == "language":
            chain.append(Language(fields, expected=config.get("language", "en")))
        else:
            chain.append(cls(fields))
    return chain


def _disabled(names: Any) -> set[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple, set)):
        raise ValueError(f"disable must be a list of heuristic names, got {names!r}")
    unknown = sorted(str(n) for n in set(names) - set(HEURISTICS))
    if unknown:
        raise ValueError(f"unknown heuristic(s) {unknown}; known: {', '.join(HEURISTICS)}")
    return set(names)


def _length(bounds: Any, fields: list[str]) -> list[Filter]:
    if bounds is None:
        return []
    stray = sorted(set(bounds) - set(fields)) if isinstance(bounds, Mapping) else []
    if stray:
        raise ValueError(f"length bounds for {stray} but fields are {fields}")
    return [Length(bounds)]


def run_chain(chain: Sequence[Filter], fields: dict[str, Any]) -> Decision:
    """The first drop of `chain` on `fields`, or KEEP when every filter keeps the record."""
    for check in chain:
        decision = check(fields)
        if not decision.keep:
            return decision
    return KEEP
