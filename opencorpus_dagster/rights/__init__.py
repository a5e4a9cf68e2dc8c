"""Answers for rights holders and regulators, from the lineage store and the published release:
the EU AI Act training-content summary (`training_summary`) and "is my work in it?" (`lookup`)."""
