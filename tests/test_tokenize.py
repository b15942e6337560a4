"""Tokeniser: Penn-Treebank-style pieces as GloVe's vocabulary holds them."""

from pipeline.text.tokenize import TokenizerSettings, tokenize, tokenize_timed


def test_contractions_split_as_glove_expects():
    assert tokenize("I don't know, can't you see? It's well-known.") == [
        "i", "do", "n't", "know", "ca", "n't", "you", "see", "it", "'s", "well-known",
    ]  # fmt: skip
    assert tokenize("Won't they've gone; we'll see, I'm sure you'd agree") == [
        "wo", "n't", "they", "'ve", "gone", "we", "'ll", "see", "i", "'m", "sure", "you",
        "'d", "agree",
    ]  # fmt: skip


def test_typographic_apostrophes_numbers_and_case():
    assert tokenize("DON\u2019T pay $3.5 at 10:30") == ["do", "n't", "pay", "3.5", "at", "10:30"]
    keep = TokenizerSettings(lowercase=False, punctuation=True)
    assert tokenize("Kids are talking, Paris!", keep) == [
        "Kids",
        "are",
        "talking",
        ",",
        "Paris",
        "!",
    ]


def test_annotations_and_silence_are_not_words():
    text = "[LAUGHTER] Excuse me ++BREATHING++ (laughs) <sil> sp okay"
    assert tokenize(text) == ["excuse", "me", "okay"]
    kept = tokenize("[LAUGHTER] hi", TokenizerSettings(drop_annotations=False))
    assert kept == ["laughter", "hi"]
    assert tokenize("") == [] and tokenize("... !!! ?") == []


def test_timed_words_share_their_span():
    out = tokenize_timed([("Don't", 1.0, 1.4), ("sp", 1.4, 1.6), ("go", 1.6, 2.0)])
    assert [t for t, _, _ in out] == ["do", "n't", "go"]
    assert out[0][1:] == (1.0, 1.2) and out[1][1] == 1.2 and abs(out[1][2] - 1.4) < 1e-9
    assert out[2][1:] == (1.6, 2.0)
