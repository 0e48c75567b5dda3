"""The incident record (host side): build record.json from the executed notebook, render the
HTML, redact, and archive it in the hash-chained index; verify the archive."""
