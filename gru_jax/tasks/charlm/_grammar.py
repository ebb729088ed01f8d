"""The grammar of :mod:`gru_jax.tasks.charlm`: its lexicon and vocabulary, the text it writes
(deterministic in a seed), and that text as token ids."""

from __future__ import annotations

import functools
import math
import random
from typing import Any, TypeVar

import numpy as np

# (singular, plural)
_ANIMATE = (
    ("cat", "cats"),
    ("dog", "dogs"),
    ("fox", "foxes"),
    ("bird", "birds"),
    ("mouse", "mice"),
    ("child", "children"),
    ("man", "men"),
    ("woman", "women"),
    ("teacher", "teachers"),
    ("farmer", "farmers"),
    ("king", "kings"),
    ("queen", "queens"),
    ("student", "students"),
    ("robot", "robots"),
    ("baker", "bakers"),
    ("wolf", "wolves"),
)
_THINGS = (
    ("book", "books"),
    ("apple", "apples"),
    ("letter", "letters"),
    ("song", "songs"),
    ("stone", "stones"),
    ("box", "boxes"),
    ("key", "keys"),
    ("story", "stories"),
    ("cake", "cakes"),
    ("ball", "balls"),
)
_PLACES = (
    "garden",
    "house",
    "river",
    "forest",
    "kitchen",
    "village",
    "market",
    "castle",
    "school",
    "field",
)
_ADJECTIVES = (
    "old",
    "young",
    "small",
    "big",
    "happy",
    "quiet",
    "clever",
    "tired",
    "brave",
    "green",
    "red",
    "lazy",
    "hungry",
    "strange",
)
# (third person singular, plural, past)
_INTRANSITIVE = (
    ("sleeps", "sleep", "slept"),
    ("runs", "run", "ran"),
    ("sings", "sing", "sang"),
    ("laughs", "laugh", "laughed"),
    ("waits", "wait", "waited"),
    ("dances", "dance", "danced"),
    ("smiles", "smile", "smiled"),
    ("cries", "cry", "cried"),
)
_TRANSITIVE_ANIMATE = (  # objects are animate
    ("sees", "see", "saw"),
    ("likes", "like", "liked"),
    ("follows", "follow", "followed"),
    ("helps", "help", "helped"),
    ("watches", "watch", "watched"),
    ("chases", "chase", "chased"),
    ("finds", "find", "found"),
    ("knows", "know", "knew"),
)
_TRANSITIVE_THING = (  # objects are things
    ("reads", "read", "read"),
    ("writes", "write", "wrote"),
    ("carries", "carry", "carried"),
    ("drops", "drop", "dropped"),
    ("wants", "want", "wanted"),
    ("finds", "find", "found"),
    ("eats", "eat", "ate"),
)
_GIVE = (
    ("gives", "give", "gave"),
    ("shows", "show", "showed"),
    ("sends", "send", "sent"),
)
_SAY = (
    ("thinks", "think", "thought"),
    ("says", "say", "said"),
    ("knows", "know", "knew"),
    ("hopes", "hope", "hoped"),
)
_DET_SG = ("the", "the", "the", "a", "a", "every", "this")
_DET_PL = ("the", "the", "the", "some", "many", "these", "two", "three")
_PREPOSITIONS = ("in", "near", "behind", "under", "by")
_ADVERBS = ("quietly", "slowly", "often", "again", "today", "happily")
_CONJUNCTIONS = ("and", "but")


def _lexicon() -> frozenset[str]:
    words = set(_PLACES) | set(_ADJECTIVES) | set(_DET_SG) | set(_DET_PL)
    words |= set(_PREPOSITIONS) | set(_ADVERBS) | set(_CONJUNCTIONS)
    words |= {"an", "that", "if", "does", "do", "did", "to", "with"}
    table: tuple[tuple[str, ...], ...]
    for table in (_ANIMATE, _THINGS, _INTRANSITIVE, _TRANSITIVE_ANIMATE):
        words |= {w for row in table for w in row}
    for table in (_TRANSITIVE_THING, _GIVE, _SAY):
        words |= {w for row in table for w in row}
    return frozenset(words)


LEXICON = _lexicon()
"""Every word the grammar can write."""

VOCAB = "".join(sorted(set("".join(LEXICON)) | set(" ,.?")))
"""The characters in token order (space, punctuation, then the letters the lexicon uses)."""

CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}
"""Each character of :data:`VOCAB` to its token id."""

START = " "
"""The start token, the input at a sentence's first step in the sentence layouts."""

_T = TypeVar("_T")


class _Grammar:
    """Sentences from ``random.Random(seed)``; ``depth`` bounds and discourages recursion.

    Every random decision goes through :meth:`_choice`, :meth:`_p` or :meth:`_branch`, which add
    its information, ``-ln P(outcome)``, to ``nats``: the derivation's information content.
    """

    def __init__(self, rng: random.Random):
        self.r = rng
        self.nats = 0.0

    def _p(self, p: float) -> bool:
        outcome = self.r.random() < p
        self.nats -= math.log(p if outcome else 1.0 - p)
        return outcome

    def _choice(self, options: tuple[_T, ...]) -> _T:
        item = self.r.choice(options)
        self.nats -= math.log(options.count(item) / len(options))
        return item

    def _branch(self, *weights: float) -> int:
        """An index drawn with probabilities ``weights`` (which sum to 1)."""
        roll, total = self.r.random(), 0.0
        for i, w in enumerate(weights):
            total += w
            if roll < total or i == len(weights) - 1:
                self.nats -= math.log(w)
                return i
        raise AssertionError("unreachable")

    def noun_phrase(self, plural: bool, kind: str, depth: int) -> str:
        det = self._choice(_DET_PL if plural else _DET_SG)
        words = [det]
        if self._p(0.35):
            words.append(self._choice(_ADJECTIVES))
            if self._p(0.15):
                words.append(self._choice(_ADJECTIVES))
        table = _ANIMATE if kind == "animate" else _THINGS
        words.append(self._choice(table)[plural])
        if det == "a" and words[1][0] in "aeiou":
            words[0] = "an"
        phrase = " ".join(words)
        if depth < 3 and self._p(0.3 / (1 + depth)):
            if kind == "animate" and self._p(0.6):
                phrase += " " + self.relative_clause(plural, depth + 1)
            else:
                phrase += " " + self.prepositional_phrase(depth + 1)
        return phrase

    def subject(self, depth: int) -> tuple[str, bool]:
        plural = self._p(0.45)
        return self.noun_phrase(plural, "animate", depth), plural

    def prepositional_phrase(self, depth: int) -> str:
        if self._p(0.25):
            return "with " + self.noun_phrase(self._p(0.4), "animate", depth)
        preposition = self._choice(_PREPOSITIONS)
        det = self._choice(("the", "the", "a", "this"))
        return f"{preposition} {det} {self._choice(_PLACES)}"

    def relative_clause(self, plural: bool, depth: int) -> str:
        """A subject relative (``that sleep``: agrees with the head) or an object relative
        (``that the dog sees``: agrees with its own subject)."""
        if self._p(0.55):
            return "that " + self.verb_phrase(plural, "present", depth)
        subject, subject_plural = self.subject(depth)
        verb = self._choice(_TRANSITIVE_ANIMATE)
        return f"that {subject} {verb[1 if subject_plural else 0]}"

    def verb_phrase(self, plural: bool, tense: str, depth: int) -> str:
        """A verb phrase agreeing with a subject of number ``plural`` (``tense`` present or past,
        or ``base`` after an auxiliary)."""
        form = {"present": 1 if plural else 0, "base": 1, "past": 2}[tense]
        if depth < 3:
            kind = self._branch(0.25, 0.25, 0.22, 0.13, 0.15)
        else:  # no deeper embedding of a clause
            kind = self._branch(0.4, 0.25, 0.22, 0.13)
        if kind == 0:
            phrase = self._choice(_INTRANSITIVE)[form]
        elif kind == 1:
            verb = self._choice(_TRANSITIVE_ANIMATE)[form]
            phrase = f"{verb} {self.noun_phrase(self._p(0.4), 'animate', depth)}"
        elif kind == 2:
            verb = self._choice(_TRANSITIVE_THING)[form]
            phrase = f"{verb} {self.noun_phrase(self._p(0.4), 'thing', depth)}"
        elif kind == 3:
            verb = self._choice(_GIVE)[form]
            thing = self.noun_phrase(self._p(0.4), "thing", depth)
            person = self.noun_phrase(self._p(0.4), "animate", depth + 1)
            phrase = f"{verb} {thing} to {person}"
        else:
            verb = self._choice(_SAY)[form]
            phrase = f"{verb} that {self.clause(depth + 1)}"
        if self._p(0.2):
            phrase += " " + self._choice(_ADVERBS)
        return phrase

    def clause(self, depth: int) -> str:
        subject, plural = self.subject(depth)
        tense = "past" if self._p(0.25) else "present"
        return f"{subject} {self.verb_phrase(plural, tense, depth)}"

    def sentence(self) -> str:
        kind = self._branch(0.15, 0.1, 0.15, 0.6)
        if kind == 0:  # a question: the auxiliary agrees with the subject
            subject, plural = self.subject(1)
            aux = "did" if self._p(0.25) else ("do" if plural else "does")
            return f"{aux} {subject} {self.verb_phrase(plural, 'base', 1)}?"
        if kind == 1:
            return f"if {self.clause(1)}, {self.clause(1)}."
        if kind == 2:
            return f"{self.clause(1)}, {self._choice(_CONJUNCTIONS)} {self.clause(1)}."
        return f"{self.clause(0)}."


def generate_text(num_chars: int, seed: int) -> str:
    """``num_chars`` characters of sentences from the grammar, deterministic in ``seed``.

    Example:
      >>> from gru_jax.tasks.charlm import VOCAB, generate_text
      >>> text = generate_text(2000, seed=0)
      >>> len(text), set(text) <= set(VOCAB), text == generate_text(2000, seed=0)
      (2000, True, True)
    """
    return _generate(num_chars, seed)[0]


def derivation_bits_per_char(num_chars: int = 200_000, seed: int = 0) -> float:
    """The information of the grammar's random decisions per character of text they wrote.

    An upper bound on the text's entropy rate (different derivations can write the same text):
    no model can beat the entropy rate, so one near this bound is near the best possible.

    Args:
      num_chars: characters of text to derive, as in :func:`generate_text`.
      seed: the seed of the grammar's ``random.Random``.
    """
    return _generate(num_chars, seed)[1]


def _derive(num_chars: int, seed: int) -> tuple[list[str], float]:
    """Sentences until they and a space after each make ``num_chars`` characters; the bits of
    their derivation per character."""
    grammar = _Grammar(random.Random(seed))
    sentences, total = [], 0
    while total < num_chars:
        sentence = grammar.sentence()
        sentences.append(sentence)
        total += len(sentence) + 1
    return sentences, grammar.nats / math.log(2.0) / total


def _generate(num_chars: int, seed: int) -> tuple[str, float]:
    sentences, bits = _derive(num_chars, seed)
    return " ".join(sentences)[:num_chars], bits


@functools.lru_cache(maxsize=8)
def sentences(num_chars: int, seed: int) -> tuple[str, ...]:
    """The grammar's sentences that :func:`generate_text` joins with spaces (whole: the last one
    may be cut off there), in order; the sentence layouts train on them.

    Args:
      num_chars: characters of the text, as in :func:`generate_text`: sentences are derived
        until they, with a space after each, make at least this many.
      seed: the seed of the grammar's ``random.Random``.

    Example:
      >>> from gru_jax.tasks.charlm import generate_text, sentences
      >>> " ".join(sentences(2000, seed=0)).startswith(generate_text(2000, seed=0))
      True
    """
    return tuple(_derive(num_chars, seed)[0])


def encode(text: str) -> np.ndarray:
    """Characters to token ids (uint8).

    Args:
      text: characters of :data:`VOCAB`.

    Raises:
      ValueError: a character of ``text`` is not in the vocabulary.
    """
    try:
        return np.fromiter((CHAR_TO_ID[c] for c in text), np.uint8, len(text))
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} is not in the vocabulary {VOCAB!r}") from None


def decode(ids: Any) -> str:
    """Token ids to characters."""
    return "".join(VOCAB[int(i)] for i in np.asarray(ids).reshape(-1))


@functools.lru_cache(maxsize=8)
def corpus(num_chars: int, seed: int) -> np.ndarray:
    """The encoded corpus for ``seed`` (cached: the loop builds each source once per run, tests
    and the baseline may ask again).

    Args:
      num_chars: characters of the corpus, as in :func:`generate_text`.
      seed: the seed of the text.

    Returns:
      ``(num_chars,)`` uint8 token ids of ``generate_text(num_chars, seed)``, read-only.
    """
    ids = encode(generate_text(num_chars, seed))
    ids.setflags(write=False)
    return ids


def unigram_bits_per_char(train_ids: np.ndarray, eval_ids: np.ndarray) -> float:
    """Cross-entropy in bits of ``eval_ids`` under the add-one-smoothed character frequencies of
    ``train_ids``."""
    counts = np.bincount(train_ids, minlength=len(VOCAB)).astype(np.float64) + 1.0
    log2_p = np.log2(counts / counts.sum())
    return float(-np.mean(log2_p[eval_ids]))
