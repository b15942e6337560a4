"""Text: tokenising transcripts, word alignments, subtitle sidecars, word vectors."""
