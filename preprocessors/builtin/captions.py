"""Caption templates for the built-in families: 2-3 different phrasings per clip, each stating every attribute
the family captions (so any phrasing is true), with synonyms and word orders varied so a text encoder cannot
latch onto one template. The first phrasing is the plain canonical one and becomes the record's "Caption".
"""

import numpy as np

COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
COUNT_TIMES = {2: "twice", 3: "three times", 4: "four times"}
PITCH_WORDS = {"high": ("high", "high-pitched"), "low": ("low", "low-pitched", "deep")}
KNOCK_PITCH_WORDS = {"high": ("high", "sharp", "high-pitched"), "low": ("low", "dull", "deep")}
BEEP_LENGTH_WORDS = {"short": ("short", "brief", "quick"), "long": ("long", "drawn-out")}
SUSTAINED_LENGTH_WORDS = {"short": ("short", "brief"), "long": ("long", "sustained", "lengthy")}
LOUD_PHRASES = ("{} at high volume", "a loud recording of {}", "{}, played loudly", "{}, loud")
QUIET_PHRASES = ("{} at low volume", "a quiet recording of {}", "{}, played softly", "{}, faint and quiet")
SEQUENCE_PHRASES = ("{}, then {}", "{} followed by {}", "first {}, then {}")

# (clause, gerund phrase) per animal; plural where the recording holds several animals.
ANIMAL_PHRASES = {
    "cat": (("a cat meows",), ("a cat meowing", "a meowing cat")),
    "cow": (("a cow moos",), ("a cow mooing", "a cow lowing")),
    "dog": (("dogs bark",), ("dogs barking", "barking dogs")),
    "duck": (("ducks quack",), ("ducks quacking", "quacking ducks")),
    "frog": (("frogs croak",), ("frogs croaking", "croaking frogs")),
    "horse": (("a horse neighs", "a horse whinnies"), ("a horse neighing", "a whinnying horse")),
    "owl": (("an owl hoots",), ("an owl hooting", "a hooting owl")),
    "pig": (("a pig grunts", "a pig oinks"), ("a pig grunting", "a grunting pig")),
    "rooster": (("a rooster crows",), ("a rooster crowing", "a crowing rooster")),
    "sheep": (("a sheep bleats", "a sheep baas"), ("a sheep bleating", "a bleating sheep")),
}
OVERLAP_PHRASES = ("{a} while {b}", "{a} as {b}", "{ga} and {gb} at the same time")
SEQUENCE_ANIMAL_PHRASES = ("{a}, then {b}", "{a}, followed by {gb}", "{ga}, and then {b}")
NOISE_PHRASES = {
    "pink": (" with background noise", " over a steady background hiss", " with static in the background"),
    "brown": (" with background noise", " over a low background rumble", " with rumbling noise behind"),
}

INSTRUMENT_NAMES = {
    "piano": ("piano", "acoustic piano"),
    "organ": ("organ", "church organ", "pipe organ"),
    "guitar": ("guitar", "acoustic guitar", "nylon-string guitar"),
    "violin": ("violin", "solo violin"),
    "flute": ("flute", "solo flute"),
    "trumpet": ("trumpet", "solo trumpet"),
}
TEMPO_WORDS = {"slow": ("slow", "unhurried", "leisurely"), "fast": ("fast", "quick", "lively")}
TEMPO_ADVERBS = {"slow": ("slowly", "at a slow tempo"), "fast": ("quickly", "at a fast tempo")}
REGISTER_WORDS = {"high": ("high", "high-pitched"), "low": ("low", "low-pitched", "deep")}
TEXTURE_NOUNS = {"melody": ("melody", "tune"), "chords": ("chords", "chord progression")}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _distinct(candidates: list[str], rng: np.random.Generator, count: int) -> list[str]:
    """The first candidate, then up to count - 1 other distinct ones in random order."""
    first, rest = candidates[0], list(dict.fromkeys(c for c in candidates[1:] if c != candidates[0]))
    order = rng.permutation(len(rest))
    return [_sentence(first)] + [_sentence(rest[index]) for index in order[: count - 1]]


def _repeated_phrase(event: dict, rng: np.random.Generator, canonical: bool) -> str:
    """Beeps or knocks: count, pitch and (for beeps) length, e.g. "three short high beeps"."""
    count, sound = event["count"], event["sound"]
    pitch_words = PITCH_WORDS if sound == "beep" else KNOCK_PITCH_WORDS
    pitch = pitch_words[event["pitch"]][0] if canonical else _pick(rng, pitch_words[event["pitch"]])
    if sound == "beep":
        length = (event["length"] if canonical else _pick(rng, BEEP_LENGTH_WORDS[event["length"]])) + " "
        noun = "beep"
    else:  # knocks are always short, so their captions name no length
        length = ""
        noun = "knock" if canonical else _pick(rng, ("knock", "tap" if event["pitch"] == "high" else "thud"))
    if canonical or rng.random() < 0.5:
        if count == 1:
            return f"a single {length}{pitch} {noun}"
        return f"{COUNT_WORDS[count]} {length}{pitch} {noun}s"
    if count == 1:
        return f"one {length}{pitch} {noun}"
    return f"{_article(f'{length}{pitch} {noun}')} repeated {COUNT_TIMES[count]}"


def _sustained_phrase(event: dict, rng: np.random.Generator, canonical: bool) -> str:
    """Tones, hums, noise and sweeps: length plus pitch or direction, e.g. "a long rising sweep"."""
    length = event["length"] if canonical else _pick(rng, SUSTAINED_LENGTH_WORDS[event["length"]])
    sound = event["sound"]
    if sound == "sweep":
        if canonical:
            return f"{_article(length)} {event['sweep']} sweep"
        direction = "upward" if event["sweep"] == "rising" else "downward"
        return _pick(rng, (
            f"{_article(length)} {event['sweep']} pitch sweep",
            f"{_article(length)} tone sweeping {direction}",
            f"{_article(length)} {event['sweep']} tone glide",
        ))
    pitch = event["pitch"] if canonical else _pick(rng, PITCH_WORDS[event["pitch"]])
    if sound == "tone":
        noun = "tone" if canonical else _pick(rng, ("tone", "sine tone", "steady tone"))
    elif sound == "hum":
        noun = "hum" if canonical else _pick(rng, ("hum", "droning hum", "electrical hum"))
    elif event["pitch"] == "high":
        noun = "hissing noise" if canonical else _pick(rng, ("hissing noise", "hiss", "burst of hissing noise"))
    else:
        noun = "rumbling noise" if canonical else _pick(rng, ("rumbling noise", "rumble", "burst of rumbling noise"))
    return f"{_article(length)} {pitch} {noun}"


def _event_phrase(event: dict, rng: np.random.Generator, canonical: bool) -> str:
    if event["sound"] in ("beep", "knock"):
        return _repeated_phrase(event, rng, canonical)
    return _sustained_phrase(event, rng, canonical)


def sfx_captions(attributes: dict, rng: np.random.Generator, count: int = 3) -> list[str]:
    """Captions for a sound-effect plan, e.g. "A low hum, then three short high beeps at low volume"."""
    loud = attributes["loudness"] == "loud"
    candidates = []
    for variant in range(6):
        canonical = variant == 0
        phrases = [_event_phrase(event, rng, canonical) for event in attributes["events"]]
        body = phrases[0] if len(phrases) == 1 else (
            SEQUENCE_PHRASES[0] if canonical else _pick(rng, SEQUENCE_PHRASES)
        ).format(*phrases)
        level = (LOUD_PHRASES if loud else QUIET_PHRASES)
        candidates.append((level[0] if canonical else _pick(rng, level)).format(body))
    return _distinct(candidates, rng, count)


def animal_captions(attributes: dict, rng: np.random.Generator, count: int = 3) -> list[str]:
    """Captions for an animal plan, e.g. "Dogs bark while a rooster crows over a low background rumble"."""
    candidates = []
    for variant in range(6):
        canonical = variant == 0
        clauses = [
            ANIMAL_PHRASES[animal][0][0] if canonical else _pick(rng, ANIMAL_PHRASES[animal][0])
            for animal in attributes["sources"]
        ]
        gerunds = [
            ANIMAL_PHRASES[animal][1][0] if canonical else _pick(rng, ANIMAL_PHRASES[animal][1])
            for animal in attributes["sources"]
        ]
        if attributes["mix"] == "single":
            body = clauses[0] if canonical else _pick(rng, (clauses[0], gerunds[0], f"the sound of {gerunds[0]}"))
        else:
            templates = OVERLAP_PHRASES if attributes["mix"] == "overlap" else SEQUENCE_ANIMAL_PHRASES
            template = templates[0] if canonical else _pick(rng, templates)
            body = template.format(a=clauses[0], b=clauses[1], ga=gerunds[0], gb=gerunds[1])
        if attributes["background_noise"]:
            noise = NOISE_PHRASES[attributes["noise_color"]]
            body += noise[0] if canonical else _pick(rng, noise)
        candidates.append(body)
    return _distinct(candidates, rng, count)


def _determined(text: str, noun: str) -> str:
    """Prefix an article unless the noun is a plural ("chords")."""
    return text if noun.endswith("s") else _article(text)


def music_captions(attributes: dict, rng: np.random.Generator, count: int = 3) -> list[str]:
    """Captions for a music plan, e.g. "A slow low piano melody", "Deep chords played quickly on a trumpet"."""
    tempo, register, texture = attributes["tempo"], attributes["register"], attributes["texture"]
    names = INSTRUMENT_NAMES[attributes["instrument"]]
    candidates = [_determined(f"{tempo} {register} {names[0]} {texture}", texture)]
    for _ in range(5):
        instrument = _pick(rng, names)
        tempo_word, register_word = _pick(rng, TEMPO_WORDS[tempo]), _pick(rng, REGISTER_WORDS[register])
        noun = _pick(rng, TEXTURE_NOUNS[texture])
        candidates.append(_pick(rng, (
            _determined(f"{tempo_word} {register_word} {instrument} {noun}", noun),
            f"{_article(instrument)} playing {_determined(f'{tempo_word} {noun}', noun)} in a {register} register",
            f"{register_word} {noun} played {_pick(rng, TEMPO_ADVERBS[tempo])} on {_article(instrument)}",
            f"{tempo_word} {instrument} music: {_determined(f'{register_word} {noun}', noun)}",
        )))
    return _distinct(candidates, rng, count)
