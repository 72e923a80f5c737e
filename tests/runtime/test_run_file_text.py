"""Text the run file keeps in fixed-width fields (gate reasons, events): cut to fit at a character boundary."""

from __future__ import annotations

from runtime.run_file import REASON_BYTES, fit_text


def test_long_text_is_cut_to_the_field_at_a_character_boundary() -> None:
    text = "channel 2: " + "µ" * 200  # two bytes each: a plain byte cut would split one
    kept = fit_text(text)
    assert len(kept) <= REASON_BYTES and len(kept) >= REASON_BYTES - 1
    assert kept.decode("utf-8") == text[: len(kept.decode("utf-8"))]  # strict decode: no broken character
    assert fit_text("short µV") == "short µV".encode()
