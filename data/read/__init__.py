"""The read side: queries the layers and pages share, the panel numbers, the briefing's numbers
frozen at a cut-off, answers cached by data version."""
