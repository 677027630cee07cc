"""Detection over a whole conversation, so a value split across turns is still caught.

Each turn is scanned on its own; then, at every boundary between consecutive turns, a window
of the text on both sides is joined (once with a space, once with nothing: "4111 1111" +
"1111 1111" and "maria.g@" + "acme.de") and scanned, and whatever it finds is mapped back
onto the turns that hold it. A cue in one turn and its value in the next ("my passport
number is" / "C01X00T47") is caught the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from utils.privacy.detector import Entity, Redaction, detect_pii

WINDOW = 48  # characters taken from each side of a boundary
Detect = Callable[[str, str], list[Entity]]


def _window(texts: Sequence[str], boundary: int, sep: str):
    """The joined text around the start of turn `boundary` and its (offset, turn, start, end)
    segments, each a slice of one turn."""
    before: list[tuple[int, int, int]] = []  # (turn, start, end), nearest last
    need, turn = WINDOW, boundary - 1
    while need > 0 and turn >= 0:
        start = max(0, len(texts[turn]) - need)
        before.insert(0, (turn, start, len(texts[turn])))
        need -= len(texts[turn]) - start + len(sep)
        turn -= 1
    after: list[tuple[int, int, int]] = []
    need, turn = WINDOW, boundary
    while need > 0 and turn < len(texts):
        end = min(len(texts[turn]), need)
        after.append((turn, 0, end))
        need -= end + len(sep)
        turn += 1
    pieces, segments, offset = [], [], 0
    for i, (turn, start, end) in enumerate(before + after):
        if i:
            pieces.append(sep)
            offset += len(sep)
        segments.append((offset, turn, start, end))
        pieces.append(texts[turn][start:end])
        offset += end - start
    return "".join(pieces), segments


def _union(entities: list[Entity]) -> list[Entity]:
    """Overlapping spans merged into one (named after the longest), sorted by start."""
    merged: list[Entity] = []
    for e in sorted(entities, key=lambda e: (e.start, -(e.end - e.start))):
        if merged and e.start < merged[-1].end:
            last = merged[-1]
            keep = last if last.end - last.start >= e.end - e.start else e
            merged[-1] = Entity(keep.type, last.start, max(last.end, e.end),
                                max(last.score, e.score))
        else:
            merged.append(e)
    return merged


def detect_turns(texts: Sequence[str], policy: str, detect: Detect = detect_pii
                 ) -> list[list[Entity]]:
    """Entities of each turn, including pieces of values that span turn boundaries."""
    found = [list(detect(text, policy)) if text else [] for text in texts]
    for boundary in range(1, len(texts)):
        for sep in (" ", ""):
            window, segments = _window(texts, boundary, sep)
            for entity in detect(window, policy) if window else []:
                for offset, turn, start, _end in segments:
                    seg_end = offset + (_end - start)
                    lo, hi = max(entity.start, offset), min(entity.end, seg_end)
                    if lo < hi:
                        found[turn].append(Entity(entity.type, start + lo - offset,
                                                  start + hi - offset, entity.score))
    return [_union(entities) for entities in found]


def redact_turns(texts: Sequence[str], policy: str, detect: Detect = detect_pii
                 ) -> list[Redaction]:
    """Each turn with every entity `detect_turns` found in it replaced by `[TYPE]`."""
    redactions = []
    for text, entities in zip(texts, detect_turns(texts, policy, detect), strict=True):
        out, pos = [], 0
        for e in entities:
            out += [text[pos:e.start], f"[{e.type}]"]
            pos = e.end
        out.append(text[pos:])
        redactions.append(Redaction("".join(out), tuple(entities), policy))
    return redactions


def family_recall(rows: Sequence[dict], policy: str, detect: Detect = detect_pii
                  ) -> dict[str, tuple[int, int]]:
    """(caught, total) labelled values per family of tests/data/pii_adversarial.jsonl rows.

    A value counts as caught only if every letter and digit of it is inside a detection
    (of any type the policy redacts): a half-redacted email still leaks. Values of types the
    policy does not redact are not counted.
    """
    from utils.privacy.detector import POLICIES

    types = POLICIES[policy]
    scores: dict[str, list[int]] = {}
    for row in rows:
        found = detect_turns(row["turns"], policy, detect)
        for gold in row["entities"]:
            if gold["type"] not in types:
                continue
            text, spans = row["turns"][gold["turn"]], found[gold["turn"]]
            caught = all(any(e.start <= i < e.end for e in spans)
                         for i in range(gold["start"], gold["end"]) if text[i].isalnum())
            score = scores.setdefault(row["family"], [0, 0])
            score[0] += caught
            score[1] += 1
    return {family: (c, n) for family, (c, n) in scores.items()}
