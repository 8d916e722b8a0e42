"""Gene annotations -> one TSS per gene (or per transcript)."""
