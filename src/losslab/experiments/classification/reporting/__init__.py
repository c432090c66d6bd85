"""What a comparison says: paired statistics and verdicts, tables, figures and report sections (the reproduce section included)."""
