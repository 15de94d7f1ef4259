"""The ten digit classes of the default benchmark and the text prompts that name them."""

from __future__ import annotations

import string

from embridge.errors import ConfigError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLASS_NAMES = list(DIGIT_WORDS)  # label i <-> CLASS_NAMES[i]

# {word}: "seven", {digit}: "7". Written, spoken and neutral phrasings, so that no template is
# tied to one modality; the train/val/test split is by template. 50 templates: with test_fraction 0.2,
# 10 test templates give 100 test text queries (a text direction needs >= 100 to be read).
TEMPLATES = (
    "{word}",
    "{digit}",
    "the number {word}",
    "the digit {digit}",
    "a handwritten {digit}",
    "someone saying {word}",
    "a photo of the number {word}",
    "a handwritten digit {word}",
    "a voice saying the word {word}",
    "the word {word} spoken aloud",
    "the numeral {digit}",
    "number {word}",
    "a scanned image of a {digit}",
    "a person counting: {word}",
    "a recording of someone pronouncing {word}",
    "an ink drawing of the digit {word}",
    "the word {word}",
    "digit {digit}",
    "it is a {digit}",
    "this is the number {word}",
    "a picture of a {digit}",
    "the sound of the word {word}",
    "a child writing {digit}",
    "someone reading out {word}",
    "the figure {digit}",
    "an example of the digit {digit}",
    "the spoken number {word}",
    "a sketch of the number {digit}",
    "the value {word}",
    "a label that reads {digit}",
    "one digit: {word}",
    "a pencil drawing of {digit}",
    "a clip of a voice saying {word}",
    "the written numeral {digit}",
    "a quick scribble of {word}",
    "a speaker pronouncing the number {word}",
    "the cardinal number {word}",
    "a digit that looks like {digit}",
    "an audio clip: {word}",
    "a blurry {digit}",
    "the answer is {word}",
    "a big bold {digit}",
    "someone whispering {word}",
    "a neatly written {word}",
    "the count {word}",
    "a symbol for {word}",
    "a {digit} drawn by hand",
    "number {digit}",
    "a loud voice: {word}",
    "a form field with a {digit}",
)
FIELDS = {"word", "digit"}


def check_templates(templates: list[str], where: str = "prepare.templates") -> None:
    """Each template names the class through {word} or {digit} and uses no other field."""
    if len(templates) < 2:
        raise ConfigError(f"{where}: {len(templates)} template(s); expected at least 2 (split into train and test)")
    if len(set(templates)) != len(templates):
        raise ConfigError(f"{where}: duplicate templates in {templates}")
    for i, t in enumerate(templates):
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(t) if f is not None}
        except ValueError as exc:
            raise ConfigError(f"{where}[{i}] = {t!r}: not a format string ({exc})") from None
        if not fields or not fields <= FIELDS:
            raise ConfigError(f"{where}[{i}] = {t!r}: expected {{word}} and/or {{digit}} and no other field")


def render(template: str, label: int) -> str:
    """The prompt for class `label`: render('the number {word}', 7) == 'the number seven'."""
    return template.format(word=DIGIT_WORDS[label], digit=str(label))
