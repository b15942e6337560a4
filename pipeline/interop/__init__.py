"""Exchange features with other tools (CMU Multimodal SDK computational sequences)."""
