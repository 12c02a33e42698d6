"""Splitting finals into readable captions and interpreting them, in order."""

from __future__ import annotations

import asyncio

from relay.caption_stage import CaptionStage, split_final
from relay.messages import Caption
from relay.translation import CaptionTranslator

LONG = ("Please press 1 to mute or unmute yourself, 4 or 6 to decrease or increase the conference "
        "volume, 7 or 9 to decrease or increase your volume, or 8 to exit.")


def final(text: str, uid: str = "u1", start: float = 10.0, end: float = 24.0) -> Caption:
    return Caption("final", uid, "en", text, start, end, 0.0)


def test_a_short_final_is_left_whole():
    caption = final("Thank you, chair.")
    assert split_final(caption) == [caption]


def test_a_long_final_becomes_captions_that_fit_two_lines():
    pieces = split_final(final(LONG))
    assert len(pieces) >= 2
    assert all(len(p.text) <= 84 for p in pieces)
    assert " ".join(p.text for p in pieces).split() == LONG.split()


def test_pieces_keep_the_id_family_and_tile_the_span():
    pieces = split_final(final(LONG))
    assert pieces[0].id == "u1" and [p.id for p in pieces[1:]] == [f"u1.{n}" for n in range(2, len(pieces) + 1)]
    assert pieces[0].start == 10.0 and pieces[-1].end == 24.0
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))


async def run_stage(translator, captions):
    out: list[Caption] = []

    async def sink(caption: Caption) -> None:
        out.append(caption)

    stage = CaptionStage(translator, sink, clock=lambda: 0.0)
    task = asyncio.create_task(stage.run())
    for caption in captions:
        await stage.offer(caption)
    stage.close()
    await asyncio.wait_for(task, 10)
    return out


async def test_real_translation_fills_every_language_and_keeps_order():
    translator = CaptionTranslator()
    try:
        out = await run_stage(translator, [
            Caption("partial", "u1", "es", "Para salir", 1.0, 2.0, 0.0),
            Caption("final", "u1", "es", "Para salir de la conferencia.", 1.0, 3.0, 0.0),
            Caption("final", "u2", "fr", "Veuillez composer votre numéro de conférence.", 4.0, 6.0, 0.0),
        ])
    finally:
        translator.close()
    assert [(c.kind, c.id) for c in out] == [("partial", "u1"), ("final", "u1"), ("final", "u2")]
    assert out[0].translations == {}
    spanish, french = out[1], out[2]
    assert spanish.translations["es"] == "Para salir de la conferencia." and "conference" in spanish.translations["en"].lower()
    assert "conferencia" in french.translations["es"].lower()
    assert set(french.mt) == {"en", "es"} and french.mt_ms is not None


async def test_without_a_translator_captions_pass_in_the_spoken_language():
    out = await run_stage(None, [final(LONG)])
    assert len(out) >= 2 and all(c.translations == {} for c in out)


async def test_markup_in_speech_is_carried_as_plain_text():
    translator = CaptionTranslator()
    try:
        out = await run_stage(translator, [final("<script>alert(1)</script> is what he said.")])
    finally:
        translator.close()
    assert out[0].text.startswith("<script>")
    assert all(isinstance(t, str) and t for t in out[0].translations.values())
